"""Sequential end to end: gradients by finite differences, a fit that must learn, float32/float64."""
import numpy as np
import pytest

import cnn
from cnn.layers import Activation, Dense
from conftest import central_differences


def three_layer(dtype="float64", out_act="softmax"):
    model = cnn.Sequential([Dense(5, "tanh", input_dim=4), Dense(6, "sigmoid"), Dense(3, out_act)],
                           seed=0, dtype=dtype)
    return model


@pytest.mark.parametrize("loss,out_act", [("sparse_categorical_crossentropy", "softmax"),
                                          ("categorical_crossentropy", "softmax"),
                                          ("mse", "relu"), ("binary_crossentropy", "sigmoid"),
                                          ("multiclass_hinge", None)])
def test_three_layer_gradients_match_finite_differences(loss, out_act):
    rng = np.random.default_rng(0)
    model = three_layer(out_act=out_act)
    model.compile("sgd", loss)
    x = rng.standard_normal((7, 4))
    if model.loss.sparse:
        y = rng.integers(0, 3, 7)
    elif loss == "categorical_crossentropy":
        y = np.eye(3)[rng.integers(0, 3, 7)]
    else:
        y = rng.random((7, 3))
    x, y = model._prepare(x, y)

    def loss_at():
        fused = model._fused()
        return model.loss(model._forward(x, True, fused), y, logits=fused, grad=False)[0]

    fused = model._fused()
    value, dout = model.loss(model._forward(x, True, fused), y, logits=fused)
    model._grads.fill(0)
    for i in range(len(model.layers) - 1, -1, -1):
        dout = model.layers[i].backward(dout, need_dx=i > 0)
    analytic = model._grads.copy()
    numeric = central_differences(loss_at, model._params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_learns_digits(dtype):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    model = cnn.Sequential([Dense(64, "relu", input_dim=64), Dense(10, "softmax")], seed=1, dtype=dtype)
    model.compile(cnn.optimizers.SGD(0.1, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy",
                  ["accuracy"])
    history = model.fit(x[:1400], y[:1400], epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.05
    assert history.history["loss"][-1] < history.history["loss"][0] / 10
    loss, acc = model.evaluate(x[1400:], y[1400:])
    assert acc > 0.9
    assert model.predict(x[:3]).dtype == np.dtype(dtype)


def test_train_on_batch_returns_loss_and_steps():
    model = three_layer()
    model.compile(cnn.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    losses = [model.train_on_batch(x, y) for _ in range(200)]
    assert isinstance(losses[0], float) and losses[-1] < losses[0] / 4


@pytest.mark.parametrize("last", ["dense", "activation"])
def test_fused_softmax_equals_logits_loss(last):
    # softmax output + cross-entropy on probabilities is trained from the logits: the same numbers as a
    # linear output with from_logits=True
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    head = [Dense(3, "softmax", input_dim=4)] if last == "dense" else [Dense(3, input_dim=4), Activation("softmax")]
    fused = cnn.Sequential(head, seed=3, dtype="float64")
    logits = cnn.Sequential([Dense(3, input_dim=4)], seed=3, dtype="float64")
    fused.compile("sgd", "sparse_categorical_crossentropy")
    logits.compile("sgd", cnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert fused._fused() and not logits._fused()
    np.testing.assert_allclose(fused.train_on_batch(x, y), logits.train_on_batch(x, y), rtol=1e-12)
    np.testing.assert_allclose(fused.get_weights()[0], logits.get_weights()[0], rtol=1e-12)
    np.testing.assert_allclose(fused.predict(x).sum(axis=1), 1.0)


def test_weights_round_trip_and_shapes():
    model = three_layer()
    model.build()
    ws = model.get_weights()
    assert [w.shape for w in ws] == [(4, 5), (5,), (5, 6), (6,), (6, 3), (3,)]
    model.set_weights([w + 1 for w in ws])
    for a, b in zip(model.get_weights(), ws):
        np.testing.assert_array_equal(a, b + 1)
    with pytest.raises(ValueError, match="shape"):
        model.set_weights([w.T for w in ws])
    assert model.count_params() == 4 * 5 + 5 + 5 * 6 + 6 + 6 * 3 + 3


def test_wrong_input_shape_names_the_layer():
    model = three_layer()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="dense"):
        model.predict(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        model.fit(np.ones((2, 4)), np.array([0, 3]), verbose=0)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.full((2, 4), np.nan), np.array([0, 1]), verbose=0)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="relu"):
        Dense(3, activation="relux")
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        three_layer().compile("sgd", "cross_entropyy")
    with pytest.raises(ValueError, match="adam"):
        three_layer().compile("adamm", "mse")
