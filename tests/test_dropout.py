"""Dropout: inverted dropout while training, the identity in predict/evaluate, masks from the model's
generator (reproducible with a seed), and the gradient through the mask."""
import numpy as np
import pytest

import cnn
from cnn.layers import Dense, Dropout, Input
from conftest import central_differences
from keras_helpers import data, small_model


def built_dropout(rate, shape=(2000,), seed=None):
    model = cnn.Sequential([Input(shape), Dropout(rate, seed=seed)], seed=0)
    model.build()
    return model.layers[0]


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9])
def test_training_mask_statistics_and_scale(rate):
    layer = built_dropout(rate)
    x = np.ones((50, 2000), np.float32)
    y = layer.forward(x, training=True)
    kept = y != 0
    # kept fraction within 5 standard errors of 1 - rate over 100,000 draws
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / x.size)
    np.testing.assert_allclose(y[kept], np.float32(1 / (1 - rate)), rtol=1e-6)
    assert abs(y.mean() - 1) < 5 * np.sqrt(rate / (1 - rate) / x.size)  # inverted dropout keeps the mean


def test_identity_at_inference_and_rate_zero():
    layer = built_dropout(0.5)
    x = np.random.default_rng(0).standard_normal((4, 2000)).astype(np.float32)
    assert layer.forward(x, training=False) is x
    np.testing.assert_array_equal(layer.backward(x), x)
    assert built_dropout(0.0).forward(x, training=True) is x
    np.testing.assert_array_equal(built_dropout(1.0).forward(x, training=True), 0)


def test_gradient_is_the_same_mask_and_passes_finite_differences():
    layer = built_dropout(0.4, shape=(7,))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 7))
    y = layer.forward(x, training=True)
    mask = layer._mask.copy()
    dy = rng.standard_normal((3, 7))
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, dy * mask)
    # the layer is linear in x for a fixed mask: central differences of L = sum(dy * y)
    num = central_differences(lambda: np.sum(dy * x * mask), x)
    np.testing.assert_allclose(dx, num, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(y, x * mask)


def test_predict_and_evaluate_ignore_dropout():
    x, y = data(n=40)
    with_drop, without = small_model(dropout=0.5, seed=4), small_model(seed=4)
    with_drop.build(), without.build()
    without.set_weights(with_drop.get_weights())
    np.testing.assert_array_equal(with_drop.predict(x), without.predict(x))
    assert with_drop.evaluate(x, y, verbose=0) == without.evaluate(x, y, verbose=0)
    assert with_drop.test_on_batch(x, y) == without.test_on_batch(x, y)
    # but training differs: dropout is active in fit and train_on_batch
    assert with_drop.train_on_batch(x, y) != without.train_on_batch(x, y)


def test_seeded_model_is_reproducible():
    x, y = data(n=64)
    runs = []
    for seed in (11, 11, 12):
        model = small_model(dropout=0.3, seed=seed)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_layer_seed_gives_its_own_stream():
    a, b = built_dropout(0.5, seed=3), built_dropout(0.5, seed=3)
    x = np.ones((2, 2000), np.float32)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))
    assert not np.array_equal(a.forward(x, training=True), built_dropout(0.5, seed=4).forward(x, training=True))


def test_rate_is_checked_and_layer_counts_no_params():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="rate"):
            Dropout(bad)
    with pytest.raises(TypeError):
        Dropout("half")
    model = cnn.Sequential([Input((5,)), Dense(3), Dropout(0.5), Dense(2)])
    model.build()
    assert model.layers[1].count_params() == 0 and model.count_params() == 18 + 8
    assert model.layers[1].name == "dropout" and model.layers[1].output_shape == (3,)
