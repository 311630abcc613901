"""The ReLU fusions of issue 20 (layers/fusion.py): the 2x2 max-pool with window codes (maxpool2x2_*, a Conv2D's
ReLU folded in), BatchNormalization + ReLU (batchnorm_* with relu) and Add + ReLU (add_forward with relu). Each fused
kernel against the unfused pair of kernels (the same values: bitwise, but for the sign of a zero) and against
PyTorch, forward and every gradient; then whole models trained fused and unfused."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnn
from cnn import _core, applications, graph
from cnn.layers import fusion
from conftest import DTYPES, assert_close

# odd sizes (an odd last row and column get no window), batch 1, and a plane of one window
SHAPES = [(1, 1, 2, 2), (2, 3, 5, 7), (3, 2, 8, 6), (1, 4, 9, 4)]
BN_SHAPES = [(1, 3, 5), (4, 2, 7), (2, 5, 1), (3, 4, 64), (2, 3, 37)]


def _pooled(shape):
    return shape[:2] + (shape[2] // 2, shape[3] // 2)


def _images(rng, shape, dtype):
    """Random values with ties, zeros of both signs, negatives-only windows and now and then a NaN."""
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[rng.random(x.size) < 0.15] = 0.5  # ties inside windows
    x.reshape(-1)[rng.random(x.size) < 0.05] = -0.0
    x[..., :2, :2] = -np.abs(x[..., :2, :2])  # the first window of each plane has no positive cell
    return x


def _unfused_pool(x, dy, relu):
    """relu (activation_forward/backward) and maxpool2d (int64 argmax): y and dx."""
    dtype, g = x.dtype, ((2, 2), (2, 2), (0, 0, 0, 0))
    z = np.empty_like(x)
    if relu:
        _core.activation_forward(z, x, _core.ACT_RELU, 0.0, 1.0)
    else:
        z[...] = x
    y, argmax = np.empty(_pooled(x.shape), dtype), np.empty(_pooled(x.shape), np.int64)
    _core.maxpool2d_forward(y, argmax, z, *g)
    dz = np.empty_like(x)
    _core.maxpool2d_backward(dz, dy, argmax, *g)
    if relu:
        _core.activation_backward(dz, dz, z, z, _core.ACT_RELU, 0.0, 1.0)
    return y, dz


def _fused_pool(x, dy, relu):
    y, code = np.empty(_pooled(x.shape), x.dtype), np.empty(_pooled(x.shape), np.uint8)
    _core.maxpool2x2_forward(y, code, x, relu)
    dx = np.full_like(x, np.nan)  # every cell must be written
    _core.maxpool2x2_backward(dx, dy, code)
    return y, dx, code


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_maxpool2x2_matches_the_unfused_kernels(rng, dtype, relu, shape):
    x = _images(rng, shape, dtype)
    if shape[2] >= 4:
        x[0, 0, 2, 1] = np.nan  # outside the windows without a positive cell
    dy = rng.standard_normal(_pooled(shape)).astype(dtype)
    y, dx, code = _fused_pool(x, dy, relu)
    y_ref, dx_ref = _unfused_pool(x, dy, relu)
    np.testing.assert_array_equal(y, y_ref)  # NaN where NaN; a zero of either sign equals the other
    np.testing.assert_array_equal(dx, dx_ref)
    assert np.all(code <= (4 if relu else 3))
    if relu:
        assert np.all(code[..., 0, 0] == 4)  # the windows without a positive cell pass no gradient


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
def test_maxpool2x2_against_torch(rng, dtype, relu):
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(dtype)
        dy = rng.standard_normal(_pooled(shape)).astype(dtype)
        y, dx, _ = _fused_pool(x, dy, relu)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        yt = F.max_pool2d(F.relu(xt) if relu else xt, 2)
        (dxt,) = torch.autograd.grad(yt, xt, torch.from_numpy(dy))
        assert_close(y, yt.detach().numpy(), dtype)
        assert_close(dx, dxt.numpy(), dtype)


def test_maxpool2x2_worked_example():
    # the window [[-1 3], [3 2]]: the first 3 wins (cell 1); [[-1 -2], [0 -3]] pooled after a ReLU is 0 and passes
    # no gradient (code 4)
    x = np.array([[[[-1, 3, -1, -2], [3, 2, 0, -3]]]], np.float64)
    y, code = np.empty((1, 1, 1, 2)), np.empty((1, 1, 1, 2), np.uint8)
    _core.maxpool2x2_forward(y, code, x, True)
    assert y.tolist() == [[[[3, 0]]]] and code.tolist() == [[[[1, 4]]]]
    dx = np.empty_like(x)
    _core.maxpool2x2_backward(dx, np.array([[[[5.0, 7.0]]]]), code)
    assert dx.tolist() == [[[[0, 5, 0, 0], [0, 0, 0, 0]]]]


def test_maxpool2x2_any_code_is_safe(rng):
    # backward reads the codes unchecked: every byte names a cell of its window or none
    dx, dy = np.empty((2, 3, 4, 6)), rng.standard_normal((2, 3, 2, 3))
    code = rng.integers(0, 256, dy.shape, dtype=np.uint8)
    _core.maxpool2x2_backward(dx, dy, code)
    for k in range(4):
        cells = dx.reshape(2, 3, 2, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 2, 3, 4)[..., k]
        np.testing.assert_array_equal(cells, np.where(code == k, dy, 0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool2x2_bitwise_across_threads(rng, dtype, restore_threads):
    x = _images(rng, (5, 16, 32, 32), dtype)
    dy = rng.standard_normal(_pooled(x.shape)).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        cnn.set_num_threads(threads)
        results.append(_fused_pool(x, dy, True))
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            assert a.tobytes() == b.tobytes()


def test_maxpool2x2_refuses_bad_arguments():
    x, y, code = np.zeros((1, 1, 1, 4)), np.zeros((1, 1, 0, 2)), np.zeros((1, 1, 0, 2), np.uint8)
    with pytest.raises(ValueError, match="at least 2x2"):
        _core.maxpool2x2_forward(y, code, x, False)
    x, y = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2))
    with pytest.raises(TypeError, match="'code' must have dtype uint8"):
        _core.maxpool2x2_forward(y, np.zeros((1, 1, 2, 2), np.int64), x, False)
    with pytest.raises(ValueError, match="'code' must have shape"):
        _core.maxpool2x2_backward(x, y, np.zeros((1, 1, 2, 3), np.uint8))


# ---- BatchNormalization + ReLU ----


def _bn_inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gamma, beta = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    return x, gamma, beta


def _bn(x, gamma, beta, relu, training=True):
    c = x.shape[1]
    y, mean, invstd = np.empty_like(x), np.empty(c, x.dtype), np.empty(c, x.dtype)
    mm, mv = np.zeros(c, x.dtype), np.ones(c, x.dtype)
    _core.batchnorm_forward(y, mean, invstd, mm, mv, x, gamma, beta, 1e-3, 0.9, training, relu)
    return y, mean, invstd, mm, mv


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batchnorm_relu_matches_the_unfused_kernels(rng, dtype, training, shape):
    x, gamma, beta = _bn_inputs(rng, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    z, mean, invstd, mm, mv = _bn(x, gamma, beta, False, training)
    y_ref = np.empty_like(z)
    _core.relu_forward(y_ref, z, np.inf, 0.0, 0.0)
    dz = np.empty_like(z)
    _core.relu_backward(dz, dy, z, np.inf, 0.0, 0.0)
    grads_ref = [np.empty_like(x), np.zeros_like(gamma), np.zeros_like(beta)]
    _core.batchnorm_backward(*grads_ref, dz, x, mean, invstd, gamma, training, False)

    y, mean2, invstd2, mm2, mv2 = _bn(x, gamma, beta, True, training)
    for a, b in ((mean, mean2), (invstd, invstd2), (mm, mm2), (mv, mv2)):
        assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(y, y_ref)
    grads = [np.full_like(x, np.nan), np.zeros_like(gamma), np.zeros_like(beta)]
    _core.batchnorm_backward(*grads, dy, x, mean, invstd, gamma, training, False, y)
    for got, ref in zip(grads, grads_ref):
        np.testing.assert_array_equal(got, ref)  # the same sums of the same values: bitwise


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_relu_against_torch(rng, dtype):
    for shape in BN_SHAPES:
        x, gamma, beta = _bn_inputs(rng, shape, dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        y, mean, invstd, _, _ = _bn(x, gamma, beta, True)
        dx, dgamma, dbeta = np.empty_like(x), np.zeros_like(gamma), np.zeros_like(beta)
        _core.batchnorm_backward(dx, dgamma, dbeta, dy, x, mean, invstd, gamma, True, False, y)
        xt, gt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, gamma, beta))
        yt = F.relu(F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-3))
        grads = torch.autograd.grad(yt, (xt, gt, bt), torch.from_numpy(dy))
        assert_close(y, yt.detach().numpy(), dtype)
        for got, ref in zip((dx, dgamma, dbeta), grads):
            assert_close(got, ref.numpy(), dtype, factor=10)  # sums over N·S of a float32 product


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_relu_bitwise_across_threads(rng, dtype, restore_threads):
    x, gamma, beta = _bn_inputs(rng, (9, 70, 64), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        cnn.set_num_threads(threads)
        y, mean, invstd, _, _ = _bn(x, gamma, beta, True)
        grads = [np.empty_like(x), np.zeros_like(gamma), np.zeros_like(beta)]
        _core.batchnorm_backward(*grads, dy, x, mean, invstd, gamma, True, False, y)
        results.append([y, *grads])
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            assert a.tobytes() == b.tobytes()


# ---- Add + ReLU ----


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_relu_matches_the_unfused_kernels_and_torch(rng, dtype):
    a, b = rng.standard_normal((2, 3, 5, 7)).astype(dtype), rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    a[0, 0, 0, :3] = [np.nan, -0.0, 0.0]
    b[0, 0, 0, :3] = [1.0, 0.0, -0.0]
    y, z, y_ref = np.empty_like(a), np.empty_like(a), np.empty_like(a)
    _core.add_forward(y, a, b, True)
    _core.add_forward(z, a, b)
    _core.relu_forward(y_ref, z, np.inf, 0.0, 0.0)
    np.testing.assert_array_equal(y, y_ref)
    # the Add layer's backward: relu_backward read off the fused output, the same as off the sum
    dy = rng.standard_normal(a.shape).astype(dtype)
    dx, dx_ref = np.empty_like(a), np.empty_like(a)
    _core.relu_backward(dx, dy, y, np.inf, 0.0, 0.0)
    _core.relu_backward(dx_ref, dy, z, np.inf, 0.0, 0.0)
    np.testing.assert_array_equal(dx, dx_ref)
    at, bt = (torch.from_numpy(v.copy()).requires_grad_(True) for v in (a, b))
    yt = F.relu(at + bt)
    da, db = torch.autograd.grad(yt, (at, bt), torch.from_numpy(dy))
    finite = ~np.isnan(y)
    assert_close(y[finite], yt.detach().numpy()[finite], dtype)
    assert_close(dx[finite], da.numpy()[finite], dtype)
    assert_close(dx[finite], db.numpy()[finite], dtype)


# ---- models: fused against unfused training ----


def _unfused(monkeypatch):
    """Every relu_fusion refused, in Sequential's chain and in Model's graph."""
    monkeypatch.setattr(fusion, "relu_fusion", lambda first, second: None)
    monkeypatch.setattr(graph, "relu_fusion", lambda first, second: None)


def _convnet(dtype):
    layers = [cnn.layers.Input((3, 12, 10))]
    for filters in (4, 6):
        layers += [cnn.layers.Conv2D(filters, 3, padding="same", activation="relu"), cnn.layers.MaxPooling2D(2)]
    layers += [cnn.layers.Conv2D(5, 3, padding="same"), cnn.layers.BatchNormalization(), cnn.layers.ReLU(),
               cnn.layers.Flatten(), cnn.layers.Dense(7, activation="relu"), cnn.layers.Dense(3, activation="softmax")]
    model = cnn.Sequential(layers, seed=3, dtype=dtype)
    model.compile(optimizer=cnn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def _steps(model, x, y, steps=3):
    losses = [model.train_on_batch(x, y) for _ in range(steps)]
    return losses, model.get_weights(), model.predict(x, verbose=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequential_fused_training_matches_unfused(rng, dtype, monkeypatch):
    x, y = rng.standard_normal((5, 3, 12, 10)).astype(dtype), rng.integers(0, 3, 5)
    model = _convnet(dtype)
    model.build()
    kinds = [fusion.relu_fusion(a, b) for a, b in zip(model.layers, model.layers[1:])]
    assert kinds.count("pool") == 2 and kinds.count("bn") == 1  # the fusions this test is about do run
    fused = _steps(model, x, y)
    _unfused(monkeypatch)
    cnn.utils.clear_session()
    unfused = _steps(_convnet(dtype), x, y)
    np.testing.assert_allclose(fused[0], unfused[0], rtol=1e-12 if dtype == np.float64 else 1e-6)
    for a, b in zip(fused[1] + [fused[2]], unfused[1] + [unfused[2]]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_resnet_fused_training_matches_unfused(rng, dtype, monkeypatch):
    x, y = rng.standard_normal((4, 3, 8, 8)).astype(dtype), rng.integers(0, 10, 4)

    def model():
        m = applications.resnet(8, input_shape=(3, 8, 8), seed=1, dtype=dtype)
        m.compile(optimizer=cnn.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
        return m

    fused_model = model()
    kinds = [kind for _, kind in fused_model._plan.fusions.values()]
    # the stem's and each block's first BatchNormalization, and each block's Add, take over their ReLU
    assert kinds.count("bn") == 4 and kinds.count("add") == 3
    fused = _steps(fused_model, x, y)
    _unfused(monkeypatch)
    cnn.utils.clear_session()
    unfused = _steps(model(), x, y)
    np.testing.assert_allclose(fused[0], unfused[0], rtol=1e-12 if dtype == np.float64 else 1e-6)
    for a, b in zip(fused[1] + [fused[2]], unfused[1] + [unfused[2]]):
        np.testing.assert_array_equal(a, b)
