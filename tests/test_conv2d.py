"""conv2d_forward / conv2d_backward against torch.nn.functional.conv2d and autograd, plus finite differences;
the forward also against reference.c's direct convolution."""
import numpy as np
import pytest
import torch

from cnn import _core
from conftest import DTYPES, TOL, assert_close, rel_err

# (n, c, h, w, oc, kh, kw, stride, padding (top, bottom, left, right), dilation, groups)
CASES = [
    (1, 1, 5, 5, 1, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (3, 2, 7, 9, 5, 3, 2, (1, 1), (1, 1, 2, 2), (1, 1), 1),
    (2, 3, 11, 8, 4, 5, 5, (2, 2), (2, 2, 2, 2), (1, 1), 1),
    (2, 4, 9, 10, 6, 3, 3, (2, 1), (0, 1, 1, 0), (2, 2), 2),
    (1, 6, 8, 7, 6, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 6),    # the lecture's per-channel 1x1
    (2, 4, 7, 7, 8, 3, 3, (1, 2), (1, 1, 1, 1), (1, 2), 4),    # depthwise, channel multiplier 2
    (3, 6, 5, 6, 9, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 3),    # pointwise gemm path with groups
    (2, 5, 6, 5, 7, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1),    # 1x1 strided goes through im2col
    (5, 1, 32, 32, 6, 5, 5, (1, 1), (0, 0, 0, 0), (1, 1), 1),  # LeNet conv1
    (4, 16, 5, 5, 120, 5, 5, (1, 1), (0, 0, 0, 0), (1, 1), 1), # LeNet conv5: one output pixel
    (2, 3, 10, 9, 3, 4, 6, (3, 2), (1, 2, 2, 3), (1, 1), 1),   # even kernels, asymmetric 'same'-style pads
    (1, 2, 13, 13, 2, 7, 7, (1, 1), (3, 3, 3, 3), (2, 1), 2),
    (3, 4, 5, 7, 8, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 4),    # per-channel 1x1 scale, multiplier 2
    (1, 3, 4, 6, 5, 4, 6, (2, 3), (0, 0, 0, 0), (1, 1), 1),    # window = whole input, batch 1: the dense path
    (19, 2, 6, 5, 3, 3, 2, (1, 1), (1, 0, 0, 1), (1, 1), 1),   # 19 samples: dw in 16 uneven chunks
    # im2col tiles of 256 output positions: 483 positions make a full tile that ends mid-row and a ragged one
    (2, 3, 23, 21, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 4, 40, 37, 6, 5, 3, (2, 1), (2, 1, 0, 2), (1, 2), 2),  # 700 positions, strided, dilated, grouped
]


def torch_conv(x, w, b, stride, pad, dil, groups):
    top, bottom, left, right = pad
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    xp = torch.nn.functional.pad(xt, (left, right, top, bottom))
    return xt, wt, bt, torch.nn.functional.conv2d(xp, wt, bt, stride, 0, dil, groups)


def run_conv(x, w, b, stride, pad, dil, groups, dy, with_dx=True):
    size = _core.conv2d_scratch_size(x.shape, w.shape, stride, pad, dil, groups)
    scratch = np.full(size, np.nan, x.dtype) if size else None  # garbage in scratch must not leak out
    y = np.empty((x.shape[0], w.shape[0]) + dy.shape[2:], x.dtype)
    _core.conv2d_forward(y, x, w, b, scratch, stride, pad, dil, groups)
    dx = np.full_like(x, np.nan) if with_dx else None
    dw, db = np.zeros_like(w), None if b is None else np.zeros_like(b)
    _core.conv2d_backward(dx, dw, db, dy, x, w, scratch, stride, pad, dil, groups)
    return y, dx, dw, db


def out_shape(n, h, w, oc, kh, kw, stride, pad, dil):
    oh = (h + pad[0] + pad[1] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pad[2] + pad[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    return (n, oc, oh, ow)


def make(rng, dtype, case):
    n, c, h, w, oc, kh, kw, stride, pad, dil, groups = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    k = rng.standard_normal((oc, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(oc).astype(dtype)
    dy = rng.standard_normal(out_shape(n, h, w, oc, kh, kw, stride, pad, dil)).astype(dtype)
    return x, k, b, dy, stride, pad, dil, groups


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_torch(rng, dtype, case):
    assert_matches_torch(*make(rng, dtype, case), dtype)


def assert_matches_torch(x, k, b, dy, stride, pad, dil, groups, dtype):
    """conv2d's output and every gradient against PyTorch's; returns cnn's (y, dx, dw, db)."""
    xt, wt, bt, yt = torch_conv(x, k, b, stride, pad, dil, groups)
    yt.backward(torch.tensor(dy))
    y, dx, dw, db = run_conv(x, k, b, stride, pad, dil, groups, dy)
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(dx, xt.grad.numpy(), dtype)
    assert_close(dw, wt.grad.numpy(), dtype)
    assert_close(db, bt.grad.numpy(), dtype)
    return y, dx, dw, db


def reference_forward(x, k, b, stride, pad, dil, groups, out):
    """reference.c's conv2d_reference_forward: the direct loop nest, the oracle beside PyTorch."""
    y = np.full(out, np.nan, x.dtype)
    _core._conv2d_reference_forward(y, x, k, b, stride, pad, dil, groups)
    return y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_conv2d_forward_matches_reference(rng, dtype, case):
    """conv2d_forward on every path (the cases cover im2col, 1x1, depthwise and dense, with stride, padding,
    dilation and groups) against the direct loop nest of reference.c, with and without bias: float64 to 1e-12,
    float32 loose as it sums in float32. The reference itself against torch in float64."""
    x, k, b, dy, stride, pad, dil, groups = make(rng, dtype, case)
    size = _core.conv2d_scratch_size(x.shape, k.shape, stride, pad, dil, groups)
    for bias in (b, None):
        ref = reference_forward(x, k, bias, stride, pad, dil, groups, dy.shape)
        y = np.full(dy.shape, np.nan, dtype)
        _core.conv2d_forward(y, x, k, bias, np.empty(size, dtype) if size else None, stride, pad, dil, groups)
        assert rel_err(y, ref) <= {np.float32: TOL[np.float32], np.float64: 1e-12}[dtype]
    *_, yt = torch_conv(x.astype(np.float64), k.astype(np.float64), b.astype(np.float64), stride, pad, dil, groups)
    assert rel_err(reference_forward(x, k, b, stride, pad, dil, groups, dy.shape), yt.detach().numpy()) <= \
        {np.float32: 1e-7, np.float64: 1e-14}[dtype]


def test_conv2d_reference_worked_example_and_checks():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])
    geo = ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    y = reference_forward(x, w, None, *geo, (1, 1, 2, 2))
    np.testing.assert_array_equal(y[0, 0], [[6, 8], [12, 14]])
    with pytest.raises(ValueError, match="_conv2d_reference_forward: argument 'y'"):
        _core._conv2d_reference_forward(np.empty((1, 1, 3, 3)), x, w, None, *geo)
    with pytest.raises(ValueError, match="_conv2d_reference_forward: argument 'b'"):
        _core._conv2d_reference_forward(np.empty((1, 1, 2, 2)), x, w, np.ones(2), *geo)
    with pytest.raises(ValueError, match="_conv2d_reference_forward: .*groups"):
        _core._conv2d_reference_forward(np.empty((1, 1, 2, 2)), x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 0)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[6]])
def test_conv2d_accumulates_and_skips(rng, case):
    """dw and db accumulate, dx overwrites; None for dx and b skips them."""
    x, k, b, dy, stride, pad, dil, groups = make(rng, np.float64, case)
    y, dx, dw, db = run_conv(x, k, b, stride, pad, dil, groups, dy)
    size = _core.conv2d_scratch_size(x.shape, k.shape, stride, pad, dil, groups)
    scratch = np.empty(size) if size else None
    y0 = np.empty_like(y)
    _core.conv2d_forward(y0, x, k, None, scratch, stride, pad, dil, groups)
    assert_close(y0, y - b[None, :, None, None], np.float64)
    dw2 = dw.copy()
    _core.conv2d_backward(None, dw2, None, dy, x, k, scratch, stride, pad, dil, groups)
    assert_close(dw2, 2 * dw, np.float64)


@pytest.mark.parametrize("case", CASES)
def test_conv2d_backward_overwrites_when_asked(rng, case):
    """accumulate=False: dw and db come out as the gradient whatever they held (every path: NaN garbage in)."""
    x, k, b, dy, stride, pad, dil, groups = make(rng, np.float64, case)
    _, _, dw, db = run_conv(x, k, b, stride, pad, dil, groups, dy)
    size = _core.conv2d_scratch_size(x.shape, k.shape, stride, pad, dil, groups)
    scratch = np.empty(size) if size else None
    _core.conv2d_forward(np.empty((x.shape[0], k.shape[0]) + dy.shape[2:]), x, k, b, scratch, stride, pad, dil, groups)
    dw2, db2 = np.full_like(dw, np.nan), np.full_like(db, np.nan)
    _core.conv2d_backward(None, dw2, db2, dy, x, k, scratch, stride, pad, dil, groups, False)
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


def test_conv2d_worked_example():
    # [[1 2 3], [4 5 6], [7 8 9]] ⋆ [[1 0], [0 1]] = [[1+5, 2+6], [4+8, 5+9]]
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])
    y = np.empty((1, 1, 2, 2))
    size = _core.conv2d_scratch_size(x.shape, w.shape, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    _core.conv2d_forward(y, x, w, None, np.empty(size), (1, 1), (0, 0, 0, 0), (1, 1), 1)
    np.testing.assert_array_equal(y[0, 0], [[6, 8], [12, 14]])


@pytest.mark.parametrize("case", [CASES[3], CASES[5], CASES[6], CASES[10]])
def test_conv2d_finite_differences(rng, case):
    """The gradient of L = Σ y·dy by central differences, in float64."""
    x, k, b, dy, stride, pad, dil, groups = make(rng, np.float64, case)
    _, dx, dw, db = run_conv(x, k, b, stride, pad, dil, groups, dy)

    def loss(x, k, b):
        return float(np.sum(run_conv(x, k, b, stride, pad, dil, groups, dy, with_dx=False)[0] * dy))

    eps = 1e-6
    for arr, grad in ((x, dx), (k, dw), (b, db)):
        num = np.empty_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            up = loss(x, k, b)
            arr[i] = old - eps
            down = loss(x, k, b)
            arr[i] = old
            num[i] = (up - down) / (2 * eps)
        assert rel_err(grad, num) < 1e-7


@pytest.mark.parametrize("case", [
    (16, 3, 16, 16, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),    # im2col
    (16, 8, 16, 16, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 8),   # depthwise
    (16, 8, 16, 16, 16, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 8),   # per-channel 1x1 scale
    (16, 8, 16, 16, 12, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 4),   # pointwise
    (37, 16, 5, 5, 120, 5, 5, (1, 1), (0, 0, 0, 0), (1, 1), 1),   # dense (LeNet's C5)
    (37, 6, 14, 14, 16, 5, 5, (1, 1), (0, 0, 0, 0), (1, 1), 1),   # LeNet's C3, dw over 16 uneven chunks
    (3, 5, 29, 19, 7, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),     # im2col in three tiles a sample
    (1, 5, 29, 19, 7, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),     # one sample: the threads split each gemm
    (19, 16, 12, 12, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),  # direct phases, 16 uneven chunks
    (5, 16, 13, 11, 40, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),   # direct, stride 2: four phase planes
    (1, 16, 32, 32, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),   # direct, one sample: one chunk
    (1, 16, 33, 31, 40, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),   # the same at stride 2
    (18, 4, 9, 9, 16, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 2),     # im2col (grouped)
])
def test_conv2d_deterministic_across_threads(rng, case):
    """Bitwise the same results for 1, 2, 3 and 16 threads: every reduction has a fixed order."""
    assert_same_bits_at_thread_counts(rng, case)


def assert_same_bits_at_thread_counts(rng, case):
    x, k, b, dy, stride, pad, dil, groups = make(rng, np.float32, case)
    old = _core.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3, 16):
            _core.set_num_threads(threads)
            results.append(run_conv(x, k, b, stride, pad, dil, groups, dy))
    finally:
        _core.set_num_threads(old)
    for other in results[1:]:
        for a, r in zip(other, results[0]):
            np.testing.assert_array_equal(a, r)


GOOD = dict(stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1), groups=1)


@pytest.mark.parametrize("change, match", [
    (dict(stride=(0, 1)), "stride"),
    (dict(pad=(0, -1, 0, 0)), "padding"),
    (dict(dil=(1, 0)), "dilation"),
    (dict(groups=0), "groups"),
    (dict(groups=2), "groups"),                 # 3 input channels do not split in two
    (dict(pad=(0, 0, 0, 0), dil=(3, 1)), "larger than the padded input"),
])
def test_conv2d_bad_geometry(rng, change, match):
    args = {**GOOD, **change}
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    with pytest.raises(ValueError, match=match):
        _core.conv2d_scratch_size(x.shape, w.shape, args["stride"], args["pad"], args["dil"], args["groups"])
    with pytest.raises(ValueError, match=match):
        _core.conv2d_forward(np.empty((2, 4, 3, 3)), x, w, None, None, args["stride"], args["pad"], args["dil"],
                             args["groups"])
    with pytest.raises(ValueError, match=match):
        _core.conv2d_backward(None, np.zeros_like(w), None, np.empty((2, 4, 3, 3)), x, w, None, args["stride"],
                              args["pad"], args["dil"], args["groups"])


def test_conv2d_bad_buffers(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    geo = ((1, 1), (0, 0, 0, 0), (1, 1), 1)
    size = _core.conv2d_scratch_size(x.shape, w.shape, *geo)
    # the direct path (conv2d.c's direct_geo): phase planes 5x5 (3 + 2 rows and columns), dy's copy 8 rows of 5
    # a channel; shared: the input gradient's weights 3·36 (the offset tables are the binding's own memory); per
    # chunk (2 of them): the planes 3·25 + 2 + 64 slack, dy's copy 4·40 + 64 slack + 4·4 (dy transposed's zero
    # rows), dw 4·27
    assert size == 3 * 36 + 2 * ((75 + 66) + (160 + 64 + 16) + 108)
    y, sc = np.empty((2, 4, 3, 3)), np.empty(size)
    with pytest.raises(ValueError, match="scratch"):
        _core.conv2d_forward(y, x, w, None, np.empty(size - 1), *geo)
    with pytest.raises(TypeError, match="scratch"):
        _core.conv2d_forward(y, x, w, None, None, *geo)
    with pytest.raises(ValueError, match="'y'"):
        _core.conv2d_forward(np.empty((2, 4, 3, 4)), x, w, None, sc, *geo)
    with pytest.raises(ValueError, match="'b'"):
        _core.conv2d_forward(y, x, w, np.empty(3), sc, *geo)
    with pytest.raises(TypeError, match="dtype"):
        _core.conv2d_forward(y.astype(np.float32), x, w, None, sc, *geo)
    with pytest.raises(TypeError, match="dtype"):
        _core.conv2d_forward(y, x.astype(np.int64), w, None, sc, *geo)
    with pytest.raises(ValueError, match="'x'"):
        _core.conv2d_forward(y, x[0], w, None, sc, *geo)
    with pytest.raises(ValueError, match="contiguous"):
        _core.conv2d_forward(y, np.asfortranarray(x), w, None, sc, *geo)
    with pytest.raises(ValueError, match="overlap"):
        _core.conv2d_forward(x.reshape(-1)[:72].reshape(2, 4, 3, 3), x, w, None, sc, *geo)
    with pytest.raises(ValueError, match="None"):
        _core.conv2d_forward(np.empty((2, 3, 5, 5)), x, np.empty((3, 1, 1, 1)), None, sc, (1, 1), (0, 0, 0, 0),
                             (1, 1), 3)
    with pytest.raises(ValueError, match="'dw'"):
        _core.conv2d_backward(None, np.zeros((4, 3, 3, 2)), None, y, x, w, sc, *geo)
    with pytest.raises(ValueError, match="'dx'"):
        _core.conv2d_backward(np.empty((2, 3, 5, 4)), np.zeros_like(w), None, y, x, w, sc, *geo)
    with pytest.raises(ValueError, match="'dy'"):
        _core.conv2d_backward(None, np.zeros_like(w), None, np.empty((2, 4, 3, 4)), x, w, sc, *geo)
    with pytest.raises(ValueError, match="writeable"):
        ro = np.zeros_like(w)
        ro.flags.writeable = False
        _core.conv2d_backward(None, ro, None, y, x, w, sc, *geo)
    with pytest.raises(TypeError):
        _core.conv2d_forward(y, x, w, None, sc, (1,), (0, 0, 0, 0), (1, 1), 1)


@pytest.mark.parametrize("x_shape,w_shape,stride,pad,groups,path", [
    ((16, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1), 1, "winograd F(2x2,3x3)"),
    ((16, 64, 28, 28), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1), 1, "direct phases"),
    ((64, 16, 32, 32), (32, 16, 3, 3), (2, 2), (1, 1, 1, 1), 1, "direct phases"),  # ResNet's strided 3x3
    ((16, 64, 56, 56), (64, 32, 3, 3), (1, 1), (1, 1, 1, 1), 2, "im2col tiles"),  # grouped
    ((2, 4, 4096, 512), (8, 4, 3, 3), (1, 1), (1, 1, 1, 1), 1, "im2col tiles"),  # a sample too large to copy
    ((16, 64, 56, 56), (64, 64, 1, 1), (1, 1), (0, 0, 0, 0), 1, "pointwise gemm"),
    ((16, 64, 56, 56), (64, 64, 1, 1), (2, 2), (0, 0, 0, 0), 1, "im2col tiles"),  # strided 1x1 gathers first
    ((16, 64, 56, 56), (64, 1, 3, 3), (1, 1), (1, 1, 1, 1), 64, "depthwise direct"),
    ((32, 16, 5, 5), (120, 16, 5, 5), (1, 1), (0, 0, 0, 0), 1, "dense gemm"),
])
def test_conv2d_path_names_the_heuristics_choice(x_shape, w_shape, stride, pad, groups, path):
    assert _core._conv2d_path(x_shape, w_shape, stride, pad, (1, 1), groups) == path
    with pytest.raises(ValueError, match="_conv2d_path: with groups=3"):
        _core._conv2d_path(x_shape, w_shape, stride, pad, (1, 1), 3)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_scratch_is_per_chunk_not_per_batch(groups):
    """The workspace is per chunk of the batch (im2col: a tile of columns; direct: a copy of a sample's input
    and of its dy): 16 samples and 256 need the same, a small part of what 256 samples' whole columns were
    (64 channels, 3x3, 56x56: 2.2 GB of float32 then)."""
    geo = ((1, 1), (1, 1, 1, 1), (1, 1), groups)
    w = (64, 64 // groups, 3, 3)
    small, large = (_core.conv2d_scratch_size((n, 64, 56, 56), w, *geo) for n in (16, 256))
    if groups == 2:
        assert small == large == 16 * (64 * 9 * (256 + 16) + 64 * 32 * 9)
    assert small == large
    assert large < 256 * 64 * 9 * 56 * 56 // (100 if groups == 2 else 50)
