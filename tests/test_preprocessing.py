"""The random augmentation layers: Keras's geometry (checked on transforms with exact answers), draws reproducible
from a seed or the model's seed, the same bits at any thread count, the identity outside training."""
import numpy as np
import pytest

import cnn
from cnn.layers import (Conv2D, Dense, Flatten, RandomContrast, RandomFlip, RandomRotation, RandomTranslation,
                        RandomZoom)

WARPS = [lambda **kw: RandomRotation(0.2, **kw), lambda **kw: RandomZoom(0.3, (-0.2, 0.1), **kw),
         lambda **kw: RandomTranslation(0.2, (-0.1, 0.3), **kw)]
ALL = WARPS + [lambda **kw: RandomFlip(**kw), lambda **kw: RandomContrast(0.5, value_range=(-5, 5), **kw)]


def built(layer, shape):
    layer.build(shape)
    return layer


def images(n=4, c=2, h=9, w=11, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def test_quarter_turn_is_rot90_counter_clockwise():
    """factor (0.25, 0.25): π/2 about the centre of a square image, cells onto cells (up to rounding of cos)."""
    x = images(h=7, w=7)
    y = built(RandomRotation((0.25, 0.25), seed=0, interpolation="nearest"), (2, 7, 7)).forward(x, training=True)
    np.testing.assert_array_equal(y, np.rot90(x, 1, axes=(2, 3)))


def test_translation_by_whole_cells_shifts_down_and_right():
    x = images(h=10, w=10)
    layer = RandomTranslation((0.2, 0.2), (-0.1, -0.1), fill_mode="constant", fill_value=7.0, seed=0)
    layer.build((2, 10, 10))
    y = layer.forward(x, training=True)
    want = np.full_like(x, 7.0)
    want[:, :, 2:, :9] = x[:, :, :8, 1:]  # 2 rows down, 1 column left
    np.testing.assert_allclose(y, want, atol=1e-6)


def test_zoom_out_by_one_halves_about_the_centre():
    """height and width factor 1: zoom 2, the output's cell i reads the input's 2i - (H-1)/2."""
    x = images(h=9, w=9)
    y = built(RandomZoom((1.0, 1.0), seed=0, fill_mode="constant"), (2, 9, 9)).forward(x, training=True)
    np.testing.assert_allclose(y[:, :, 2:7, 2:7], x[:, :, 0:9:2, 0:9:2], atol=1e-6)
    assert (y[:, :, 0] == 0).all() and (y[:, :, :, -1] == 0).all()


def test_zoom_keeps_the_aspect_ratio_without_width_factor():
    rng = np.random.default_rng(0)
    m = RandomZoom(0.4).matrices(50, 8, 8, rng)
    np.testing.assert_array_equal(m[:, 0, 0], m[:, 1, 1])
    assert np.all((m[:, 0, 0] >= 0.6) & (m[:, 0, 0] <= 1.4))


def test_flip_modes():
    x = images(n=64)
    y = built(RandomFlip("horizontal", seed=1), (2, 9, 11)).forward(x, training=True)
    flipped = [bool((y[i] == x[i, :, :, ::-1]).all()) for i in range(64)]
    assert all(f or (y[i] == x[i]).all() for i, f in enumerate(flipped)) and 10 < sum(flipped) < 54
    y = built(RandomFlip("vertical", seed=1), (2, 9, 11)).forward(x, training=True)
    assert all((y[i] == x[i, :, ::-1]).all() or (y[i] == x[i]).all() for i in range(64))


def test_contrast_scales_about_the_channel_mean_and_clips():
    x = images()
    y = built(RandomContrast((0.5, 0.5), value_range=(-1, 1), seed=0), (2, 9, 11)).forward(x, training=True)
    mean = x.mean(axis=(2, 3), keepdims=True)
    factor = (y - mean)[np.abs(y) < 1] / (x - mean)[np.abs(y) < 1]
    assert np.all((factor > 0.5 - 1e-4) & (factor < 1.5 + 1e-4)) and y.max() <= 1 and y.min() >= -1


@pytest.mark.parametrize("make", ALL)
def test_identity_outside_training_and_seeded_draws_repeat(make):
    x = images()
    a, b = built(make(seed=3), (2, 9, 11)), built(make(seed=3), (2, 9, 11))
    assert a.forward(x) is x
    first = a.forward(x, training=True).copy()  # the warps reuse their output buffer, as Conv2D does
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))  # the next batch draws anew


@pytest.mark.parametrize("make", WARPS)
@pytest.mark.parametrize("fill_mode", ["constant", "nearest", "reflect"])
def test_same_bits_at_any_thread_count(make, fill_mode):
    x = images(n=64, c=3, h=29, w=31)
    threads = cnn.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 4):
            cnn.set_num_threads(t)
            outs.append(built(make(seed=5, fill_mode=fill_mode), (3, 29, 31)).forward(x, training=True))
    finally:
        cnn.set_num_threads(threads)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def augmented_model(seed):
    model = cnn.Sequential([RandomRotation(0.05, input_shape=(1, 12, 12)), RandomZoom(0.1), RandomTranslation(0.1, 0.1),
                            RandomFlip("horizontal"), Conv2D(3, 3, activation="relu"), Flatten(),
                            Dense(4, activation="softmax")], seed=seed)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_model_seed_makes_fit_reproducible_and_predict_is_deterministic():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1, 12, 12)).astype(np.float32), rng.integers(0, 4, 40)
    a, b = augmented_model(7), augmented_model(7)
    a.fit(x, y, epochs=2, batch_size=8, verbose=0)
    b.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(x, verbose=0), a.predict(x, verbose=0))
    assert a.evaluate(x, y, verbose=0) == a.evaluate(x, y, verbose=0)
    c = augmented_model(8)
    c.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_predict_equals_the_model_without_augmentation():
    x = np.random.default_rng(1).random((5, 1, 12, 12)).astype(np.float32)
    model = augmented_model(0)
    model.build()
    plain = cnn.Sequential([type(layer).from_config(layer.get_config()) for layer in model.layers[4:]], seed=0)
    plain.build((None, 1, 12, 12))
    plain.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x, verbose=0), plain.predict(x, verbose=0))


def test_config_round_trip():
    layer = RandomZoom((-0.2, 0.3), 0.1, fill_mode="nearest", interpolation="nearest", seed=4)
    clone = RandomZoom.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_warp_after_a_layer_with_weights_refuses_to_train():
    model = cnn.Sequential([Conv2D(1, 1, input_shape=(1, 5, 5)), RandomRotation(0.1), Flatten(), Dense(2)], seed=0)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="put the augmentation layers first"):
        model.train_on_batch(np.ones((1, 1, 5, 5), np.float32), np.ones((1, 2), np.float32))


def test_flip_passes_its_gradient_back():
    layer = built(RandomFlip(seed=2), (2, 9, 11))
    x, dy = images(n=16), images(n=16, seed=1)
    y = layer.forward(x, training=True)
    assert np.isclose((y * dy).sum(), (x * layer.transpose(dy)).sum(), rtol=1e-5)


@pytest.mark.parametrize("make, error, words", [
    (lambda: RandomRotation((0.3, 0.1)), ValueError, "lower <= upper"),
    (lambda: RandomRotation(0.1, fill_mode="wrap"), ValueError, "fill_mode must be one of"),
    (lambda: RandomZoom(0.1, interpolation="bicubic"), ValueError, "interpolation must be one of"),
    (lambda: RandomZoom((-1.0, 0.2)), ValueError, "height_factor must be > -1"),
    (lambda: RandomTranslation(1.5, 0.1), ValueError, r"height_factor must lie in \[-1, 1\]"),
    (lambda: RandomTranslation(0.1, (0.1, 0.2, 0.3)), ValueError, "width_factor must be a number or a pair"),
    (lambda: RandomFlip("diagonal"), ValueError, "mode must be one of"),
    (lambda: RandomContrast(1.5), ValueError, "factor must give 0 <= lower <= 1"),
    (lambda: RandomRotation(float("nan")), TypeError, "factor must be a finite number"),
    (lambda: RandomRotation(0.1, seed=-1), ValueError, "seed must be >= 0"),
])
def test_bad_arguments_are_named(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_unbuilt_layer_without_seed_names_itself():
    with pytest.raises(ValueError, match="RandomFlip needs seed="):
        RandomFlip().forward(np.ones((1, 1, 2, 2)), training=True)


def test_save_and_load_keep_the_layers_and_their_generators(tmp_path):
    model = cnn.Sequential([RandomRotation(0.1, seed=3, fill_mode="nearest", input_shape=(1, 8, 8)), RandomFlip(),
                            Flatten(), Dense(2)], seed=1)
    model.compile("sgd", "mse")
    x = images(n=4, c=1, h=8, w=8)
    model.train_on_batch(x, np.zeros((4, 2), np.float32))  # both generators have moved on
    model.save(tmp_path / "m.keras")
    loaded = cnn.models.load_model(tmp_path / "m.keras")
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    for a, b in zip(model.layers[:2], loaded.layers[:2]):
        np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


def test_consecutive_warps_resample_once_with_the_product_of_their_matrices():
    layers = [RandomRotation(0.1, seed=1, input_shape=(2, 9, 11)), RandomZoom(0.2, seed=2),
              RandomTranslation(0.1, 0.2, seed=3)]
    model = cnn.Sequential(layers + [Flatten(), Dense(2)], seed=0)
    model.build()
    x = images()
    h = x
    for layer in layers:
        h = layer.forward(h, training=True)
    m = [type(layer).from_config(layer.get_config()).matrices(4, 9, 11, np.random.default_rng(seed))
         for layer, seed in zip(layers, (1, 2, 3))]
    product = np.eye(3)[None].repeat(4, 0)
    for mi in m:
        product = product @ np.concatenate([mi, np.tile([[[0.0, 0.0, 1.0]]], (4, 1, 1))], axis=1)
    want = cnn.image.affine_transform(x, product[:, :2].astype(np.float32), mode="reflect")
    np.testing.assert_allclose(h, want, atol=1e-5)


def test_warps_with_other_fills_resample_apart():
    rotate, shift = RandomRotation(0.1, seed=1, input_shape=(2, 9, 11)), RandomTranslation(0.1, 0.2, seed=3,
                                                                                           fill_mode="nearest")
    model = cnn.Sequential([rotate, shift, Flatten(), Dense(2)], seed=0)
    model.build()
    x = images()
    got = shift.forward(rotate.forward(x, training=True), training=True)
    alone = [built(RandomRotation(0.1, seed=1), (2, 9, 11)), built(RandomTranslation(0.1, 0.2, seed=3,
                                                                                     fill_mode="nearest"), (2, 9, 11))]
    np.testing.assert_array_equal(got, alone[1].forward(alone[0].forward(x, training=True), training=True))
