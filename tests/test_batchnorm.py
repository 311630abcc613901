"""BatchNormalization: the kernels and the layer against torch.nn.functional.batch_norm in training and inference
mode, the moving-statistics update (Keras's, translated to PyTorch's momentum), every gradient, the non-trainable
moving statistics in a model, and the folding into the Conv2D or Dense before it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnn
from cnn import _core
from cnn.layers import BatchNormalization, Conv2D, Dense
from cnn.layers.fusion import chain_steps
from conftest import DTYPES, assert_close, central_differences

# (n, c, h, w) and the dense (n, features) case as w = h = None; batch 1 included (a plane of several pixels)
SHAPES = [(1, 3, 5, 7), (4, 5, 3, 3), (7, 2, 1, 1), (3, 6, None, None), (2, 1, 9, 2)]


def _x(rng, shape, dtype):
    n, c, h, w = shape
    return (rng.standard_normal((n, c) if h is None else (n, c, h, w)) * 3 + 2).astype(dtype)


def _layer(x, rng, dtype, **kw):
    layer = BatchNormalization(**kw)
    layer.build(x.shape[1:])
    layer.weights = [np.ascontiguousarray(v, dtype) for v in
                     ([rng.standard_normal(x.shape[1])] if layer.scale else []) +
                     ([rng.standard_normal(x.shape[1])] if layer.center else []) +
                     [rng.standard_normal(x.shape[1]), rng.random(x.shape[1]) + 0.5]]
    layer.grads = [np.zeros(x.shape[1], dtype) for _ in range(layer.scale + layer.center)]
    return layer


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [(True, True), (False, True), (True, False)])
def test_layer_matches_torch(rng, dtype, shape, training, affine):
    scale, center = affine
    x = _x(rng, shape, dtype)
    layer = _layer(x, rng, dtype, scale=scale, center=center)
    gamma = torch.tensor(layer.weights[0], requires_grad=True) if scale else None
    beta = torch.tensor(layer.weights[int(scale)], requires_grad=True) if center else None
    moving_mean, moving_var = (torch.tensor(w.copy()) for w in layer.weights[-2:])
    before_var = moving_var.clone()
    xt = torch.tensor(x, requires_grad=True)
    # Keras's momentum 0.99 is PyTorch's 0.01 (the weight of the new batch)
    yt = F.batch_norm(xt, moving_mean, moving_var, gamma, beta, training=training, momentum=0.01, eps=1e-3)
    dy = rng.standard_normal(x.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    y = layer.forward(x, training=training).copy()
    assert_close(y, yt.detach().numpy(), dtype)
    dx = layer.backward(dy)
    assert_close(dx, xt.grad.numpy(), dtype)
    if scale:
        assert_close(layer.grads[0], gamma.grad.numpy(), dtype)
    if center:
        assert_close(layer.grads[int(scale)], beta.grad.numpy(), dtype)
    assert_close(layer.weights[-2], moving_mean.numpy(), dtype)
    if training:  # Keras moves toward the biased batch variance, PyTorch toward the unbiased one
        m = x.size // x.shape[1]
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        biased = torch.tensor(x.astype(np.float64)).var(dim=axes, correction=0).numpy()
        assert_close(layer.weights[-1], 0.99 * before_var.numpy() + 0.01 * biased, dtype)
        if m > 1:
            assert_close(layer.weights[-1] - 0.99 * before_var.numpy(),
                         (moving_var - 0.99 * before_var).numpy() * (m - 1) / m, dtype, factor=10)
    else:
        np.testing.assert_array_equal(layer.weights[-1], moving_var.numpy())


@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_central_differences(rng, training):
    x = rng.standard_normal((3, 2, 2, 3))
    dy = rng.standard_normal(x.shape)
    layer = _layer(x, rng, np.float64)
    moving = [w.copy() for w in layer.weights[-2:]]

    def loss():
        layer.weights[-2][...], layer.weights[-1][...] = moving
        return float(np.sum(layer.forward(x, training=training) * dy))

    loss()
    dx = layer.backward(dy).copy()
    np.testing.assert_allclose(dx, central_differences(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.grads[0], central_differences(loss, layer.weights[0]), rtol=1e-6, atol=1e-8)


def test_worked_example():
    # one channel [1 3]: mean 2, biased variance 1 → [-1 1] with eps 0 (the kernel takes any eps)
    x = np.array([[[1.0]], [[3.0]]])
    y, mean, inv = np.empty_like(x), np.empty(1), np.empty(1)
    mm, mv = np.zeros(1), np.ones(1)
    _core.batchnorm_forward(y, mean, inv, mm, mv, x, None, None, 0.0, 0.5, True)
    np.testing.assert_array_equal(y.ravel(), [-1, 1])
    np.testing.assert_array_equal([mean[0], inv[0], mm[0], mv[0]], [2, 1, 1, 1])


# the kernels sweep blocks of channels sized to the cache: one channel a block for 32×32 planes at batch 64, two
# uneven blocks for the second, one block for the first
@pytest.mark.parametrize("shape", [(64, 12, 32, 32), (32, 70, 5, 5), (16, 8, 20, 20)])
def test_same_bits_at_any_thread_count(rng, restore_threads, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        cnn.set_num_threads(threads)
        layer = _layer(x, np.random.default_rng(0), np.float32)
        y = layer.forward(x, training=True).copy()
        dx = layer.backward(dy).copy()
        results.append([y, dx, *[w.copy() for w in layer.weights], *[g.copy() for g in layer.grads]])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_bits_do_not_depend_on_the_other_channels(rng, dtype):
    """Each channel's sums run in one order whatever block of channels it is swept with."""
    x = rng.standard_normal((64, 70, 5, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    whole = _layer(x, np.random.default_rng(0), dtype)
    y, dx = whole.forward(x, training=True).copy(), whole.backward(dy).copy()
    for j in (0, 63, 64, 69):
        one = BatchNormalization()
        one.build((1, 5, 5))
        one.weights = [w[j:j + 1].copy() for w in whole.weights]
        one.grads = [np.zeros(1, dtype) for _ in whole.grads]
        np.testing.assert_array_equal(one.forward(x[:, j:j + 1], training=True), y[:, j:j + 1])
        np.testing.assert_array_equal(one.backward(dy[:, j:j + 1]), dx[:, j:j + 1])


def test_variance_about_a_large_mean_is_accurate(rng):
    """The variance is summed about the mean (two passes): Σx²/M - mean², even in double, would lose it to
    cancellation here (x² ~ 1e14, so its rounding alone is ~1e-2 of the variance)."""
    x = 1e7 + rng.standard_normal((8, 3, 36))
    mean, inv, mm, mv = (np.zeros(3) for _ in range(4))
    _core.batchnorm_forward(np.empty_like(x), mean, inv, mm, mv, x, None, None, 0.0, 0.0, True)
    exact = x.transpose(1, 0, 2).reshape(3, -1)
    np.testing.assert_allclose(mv, exact.var(axis=1), rtol=1e-9)
    np.testing.assert_allclose(mm, exact.mean(axis=1), rtol=1e-15)


def test_moving_statistics_are_not_trainable(rng):
    model = cnn.Sequential([Dense(4, input_dim=3), BatchNormalization(), Dense(2)], seed=0)
    model.compile(optimizer=cnn.optimizers.AdamW(learning_rate=0.1, weight_decay=0.5), loss="mse")
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model.build()
    assert [w.shape for w in model.layers[1].get_weights()] == [(4,)] * 4
    assert len(model.layers[1].grads) == 2 and model.count_params() == 16 + 16 + 10
    bn = model.layers[1]
    mean0, var0 = bn.weights[2].copy(), bn.weights[3].copy()
    h = model.layers[0].forward(model._prepare_inputs(x)).astype(np.float64)
    model.train_on_batch(x, y)
    # the moving statistics moved toward the batch's exactly (no weight decay, no optimizer step on them)
    np.testing.assert_allclose(bn.weights[2], 0.99 * mean0 + 0.01 * h.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.weights[3], 0.99 * var0 + 0.01 * h.var(0), rtol=1e-5)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Non-trainable params" in line and " 8 " in line for line in lines)


def test_save_load_and_predict_use_moving_statistics(rng, tmp_path):
    model = cnn.Sequential([Conv2D(3, 3, input_shape=(2, 6, 6)), BatchNormalization(), cnn.layers.Flatten(),
                            Dense(2)], seed=1)
    model.compile(optimizer="sgd", loss="mse")
    x, y = rng.standard_normal((5, 2, 6, 6)), rng.standard_normal((5, 2))
    model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = cnn.models.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    loaded.fit(x, y, epochs=1, batch_size=2, verbose=0, shuffle=False)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0, shuffle=False)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_predict_folds_into_previous_layer(rng, dtype, kind):
    x = rng.standard_normal((3, 2, 7, 6) if kind == "conv" else (3, 5)).astype(dtype)
    prev = Conv2D(4, 3, padding="same") if kind == "conv" else Dense(4)
    model = cnn.Sequential([prev, BatchNormalization(), cnn.layers.Activation("relu")], seed=2, dtype=dtype)
    model.build(x.shape[1:])
    bn = model.layers[1]
    bn.set_weights([rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4), rng.random(4) + 0.5])
    prev.weights[1][...] = rng.standard_normal(4)
    assert ["params" in kwargs for _, _, kwargs in chain_steps(model.layers, False)] == [True, False]
    unfused = np.maximum(bn.forward(prev.forward(x).copy(), training=False), 0)
    fused = model.predict(x, verbose=0)
    assert_close(fused, unfused, dtype, factor=10)
    assert not np.array_equal(fused, model.layers[0].forward(x))  # the fold did change the layer's output


def test_no_fold_across_an_activation():
    # BatchNormalization after the ReLU normalises the rectified output: no affine fold exists
    model = cnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(1, 5, 5)), BatchNormalization()])
    model.build()
    assert ["params" not in kwargs for _, _, kwargs in chain_steps(model.layers, False)] == [True, True]


def test_bad_arguments():
    with pytest.raises(ValueError, match="axis"):
        BatchNormalization(axis=3)
    with pytest.raises(ValueError, match="momentum"):
        BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        BatchNormalization(epsilon=0)
    with pytest.raises(ValueError, match="axis=1"):
        cnn.Sequential([BatchNormalization(axis=-1, input_shape=(2, 3, 3))]).build()


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_predict_folds_where_batchnorm_is_the_only_reader(rng, dtype):
    """Folded: conv_a -> bn_a (bn_a's output feeds an Add), dense -> bn_d (a model output). Not folded: conv_b,
    read by bn_b and by the Add too; conv_c, with a ReLU between it and bn_c."""
    inp = cnn.layers.Input(shape=(2, 7, 6))
    conv_b = Conv2D(3, 3, padding="same", name="conv_b")(inp)
    a = BatchNormalization(name="bn_a")(Conv2D(3, 3, padding="same", name="conv_a")(inp))
    b = BatchNormalization(name="bn_b")(conv_b)
    c = BatchNormalization(name="bn_c")(Conv2D(3, 3, padding="same", activation="relu", name="conv_c")(inp))
    s = cnn.layers.Add()([a, b, c, conv_b])
    d = BatchNormalization(name="bn_d")(Dense(4, name="dense")(cnn.layers.Flatten()(s)))
    model = cnn.Model(inp, [d, s], seed=3, dtype=dtype)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            n = layer.input_shape[0]
            layer.set_weights([rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n),
                               rng.random(n) + 0.5])
        elif layer.weights and len(layer.weights) > 1:
            layer.weights[1][...] = rng.standard_normal(layer.weights[1].shape)
    plan = model._plan
    folded = {plan.steps[i][0].name: plan.steps[j][0].name for i, j in plan.folds.items()}
    assert folded == {"conv_a": "bn_a", "dense": "bn_d"}
    x = rng.standard_normal((3, 2, 7, 6)).astype(dtype)
    fused = model.predict(x, verbose=0)
    plan.folds = {}
    unfused = model.predict(x, verbose=0)
    for f, u in zip(fused, unfused):
        assert_close(f, u, dtype, factor=10)
    assert not np.array_equal(fused[0], unfused[0])  # the fold ran: rounding differs from the two-pass result
