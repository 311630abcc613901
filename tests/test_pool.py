"""maxpool2d / avgpool2d against torch.nn.functional.max_pool2d (with indices) and avg_pool2d."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn import _core
from conftest import DTYPES, assert_close, central_differences, rel_err

# (n, c, h, w, kernel, stride, padding (top, bottom, left, right)); torch pads symmetrically
CASES = [
    (1, 1, 4, 4, (2, 2), (2, 2), (0, 0, 0, 0)),
    (3, 2, 7, 9, (3, 3), (2, 2), (1, 1, 1, 1)),
    (2, 3, 8, 5, (2, 3), (1, 2), (1, 1, 0, 0)),
    (1, 4, 11, 10, (5, 4), (3, 3), (2, 2, 2, 2)),
    (32, 6, 28, 28, (2, 2), (2, 2), (0, 0, 0, 0)),   # LeNet
    (2, 3, 7, 5, (2, 2), (2, 2), (0, 0, 0, 0)),      # 2x2 fast path, odd sizes: the last row and column unused
]


def out_shape(n, c, h, w, k, s, p):
    return (n, c, (h + p[0] + p[1] - k[0]) // s[0] + 1, (w + p[2] + p[3] - k[1]) // s[1] + 1)


def max_pool(x, k, s, p):
    y = np.empty(out_shape(*x.shape, k, s, p), x.dtype)
    idx = np.empty(y.shape, np.int64)
    _core.maxpool2d_forward(y, idx, x, k, s, p)
    return y, idx


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,h,w,k,s,p", CASES)
def test_maxpool_matches_torch(rng, dtype, n, c, h, w, k, s, p):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, k, s, (p[0], p[2]), return_indices=True)
    dy = rng.standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    y, idx = max_pool(x, k, s, p)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    dx = np.full_like(x, np.nan)
    _core.maxpool2d_backward(dx, dy, idx, k, s, p)
    assert_close(dx, xt.grad.numpy(), dtype)


@pytest.mark.parametrize("n,c,h,w,k,s,p", [
    (9, 8, 130, 128, (2, 2), (2, 2), (0, 0, 0, 0)),  # 2x2 path: 3 samples a chunk, 3 chunks
    (13, 16, 80, 80, (3, 3), (2, 2), (1, 1, 1, 1)),  # general path: 5 samples a chunk, the last chunk short
    (2, 40, 130, 130, (2, 2), (2, 2), (0, 0, 0, 0)),  # one sample's argmax larger than a chunk
])
def test_maxpool_backward_in_chunks_matches_torch(rng, n, c, h, w, k, s, p):
    """maxpool2d_backward copies argmax a chunk of samples at a time (2**17 entries, module.c): every chunk
    lands on its own samples."""
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, k, s, (p[0], p[2]), return_indices=True)
    dy = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(dy))
    dx = np.full_like(x, np.nan)
    _core.maxpool2d_backward(dx, dy, it.numpy(), k, s, p)
    assert_close(dx, xt.grad.numpy(), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_ties_and_nan_as_torch(dtype):
    # ties: the first maximum in row-major order; NaN wins and the last NaN keeps the index; all -inf
    x = np.array([[[[1, 3, 0, 0], [3, 2, 0, 0], [-np.inf, -np.inf, 5, np.nan], [-np.inf, -np.inf, np.nan, 5]]]],
                 dtype)
    for k, s, p in (((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (1, 1), (1, 1, 1, 1)), ((2, 2), (1, 1), (1, 1, 1, 1))):
        y, idx = max_pool(x, k, s, p)
        yt, it = F.max_pool2d(torch.tensor(x), k, s, (p[0], p[2]), return_indices=True)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(idx, it.numpy())
    y, idx = max_pool(x, (2, 2), (2, 2), (0, 0, 0, 0))
    assert idx[0, 0, 0, 0] == 1 and y[0, 0, 0, 0] == 3  # worked example: [[1 3], [3 2]] → 3 at index 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("n,c,h,w,k,s,p", CASES)
def test_avgpool_matches_torch(rng, dtype, include, n, c, h, w, k, s, p):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.avg_pool2d(xt, k, s, (p[0], p[2]), count_include_pad=include)
    dy = rng.standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    y = np.empty(yt.shape, dtype)
    _core.avgpool2d_forward(y, x, k, s, p, include)
    assert_close(y, yt.detach().numpy(), dtype)
    dx = np.full_like(x, np.nan)
    _core.avgpool2d_backward(dx, dy, k, s, p, include)
    assert_close(dx, xt.grad.numpy(), dtype)


def test_avgpool_asymmetric_same_padding():
    """Keras 'same' with an even window pads bottom/right only and divides by the real cells."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = np.empty((1, 1, 2, 2))
    _core.avgpool2d_forward(y, x, (2, 2), (2, 2), (0, 1, 0, 1), False)
    np.testing.assert_array_equal(y[0, 0], [[(1 + 2 + 4 + 5) / 4, (3 + 6) / 2], [(7 + 8) / 2, 9]])
    _core.avgpool2d_forward(y, x, (2, 2), (2, 2), (0, 1, 0, 1), True)
    np.testing.assert_array_equal(y[0, 0], [[3, 9 / 4], [15 / 4, 9 / 4]])


@pytest.mark.parametrize("kind", ["max", "avg_include", "avg_real"])
def test_pool_finite_differences(rng, kind):
    k, s, p = (3, 2), (2, 1), (1, 1, 0, 1)
    x = rng.standard_normal((2, 2, 6, 5))
    dy = rng.standard_normal(out_shape(*x.shape, k, s, p))

    def forward(x):
        if kind == "max":
            return max_pool(x, k, s, p)[0]
        y = np.empty(dy.shape)
        _core.avgpool2d_forward(y, x, k, s, p, kind == "avg_include")
        return y

    dx = np.empty_like(x)
    if kind == "max":
        _core.maxpool2d_backward(dx, dy, max_pool(x, k, s, p)[1], k, s, p)
    else:
        _core.avgpool2d_backward(dx, dy, k, s, p, kind == "avg_include")
    num = central_differences(lambda: np.sum(forward(x) * dy), x)
    assert rel_err(dx, num) < 1e-7


def test_pool_bad_arguments(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    y, idx = np.empty((2, 3, 3, 3)), np.empty((2, 3, 3, 3), np.int64)
    geo = ((2, 2), (2, 2), (0, 0, 0, 0))
    for k, s, p, match in (((0, 2), (2, 2), (0, 0, 0, 0), "kernel_size"), ((2, 2), (2, 0), (0, 0, 0, 0), "stride"),
                           ((2, 2), (2, 2), (0, -1, 0, 0), "padding"), ((2, 2), (2, 2), (2, 0, 0, 0), "half"),
                           ((7, 2), (2, 2), (0, 0, 0, 0), "empty")):
        with pytest.raises(ValueError, match=match):
            _core.maxpool2d_forward(y, idx, x, k, s, p)
        with pytest.raises(ValueError, match=match):
            _core.avgpool2d_forward(y, x, k, s, p, True)
        with pytest.raises(ValueError, match=match):
            _core.avgpool2d_backward(x.copy(), y, k, s, p, True)
        with pytest.raises(ValueError, match=match):
            _core.maxpool2d_backward(x.copy(), y, idx, k, s, p)
    with pytest.raises(ValueError, match="'y'"):
        _core.maxpool2d_forward(np.empty((2, 3, 3, 2)), idx, x, *geo)
    with pytest.raises(ValueError, match="'argmax'"):
        _core.maxpool2d_forward(y, np.empty((2, 3, 3, 2), np.int64), x, *geo)
    with pytest.raises(TypeError, match="argmax"):
        _core.maxpool2d_forward(y, idx.astype(np.int32), x, *geo)
    with pytest.raises(TypeError, match="dtype"):
        _core.avgpool2d_forward(y.astype(np.float32), x, *geo, True)
    with pytest.raises(ValueError, match="overlap"):
        _core.avgpool2d_forward(x.reshape(-1)[:54].reshape(2, 3, 3, 3), x, *geo, True)
    _core.maxpool2d_forward(y, idx, x, *geo)
    bad = idx.copy()
    bad[1, 2, 0, 1] = 36
    with pytest.raises(ValueError, match="plane indices"):
        _core.maxpool2d_backward(np.empty_like(x), y, bad, *geo)
    bad[1, 2, 0, 1] = -1
    with pytest.raises(ValueError, match="plane indices"):
        _core.maxpool2d_backward(np.empty_like(x), y, bad, *geo)
