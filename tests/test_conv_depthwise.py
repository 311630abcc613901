"""conv2d's depthwise path (csrc/conv_depthwise.c, conv_depthwise_tile.h: groups = C > 1, all but the 1x1
per-channel scale), whose kernels conv2d_depthwise_forward and conv2d_depthwise_backward have no binding of their own:
conv2d_forward and conv2d_backward reach them (each test checks _conv2d_path says "depthwise direct"), on every
instruction-set instance this CPU runs, against torch.nn.functional.conv2d(groups=C): forward, input, weight and bias
gradients, float64 to 1e-10 and float32 to 1e-5 relative. The shapes reach the kernels' edges: rows narrower than a
vector (every output then crosses the padding), rows of several vectors plus a ragged end (the last vector moved back),
strides 1-3 (the input gradient's column phases), dilation 2, asymmetric padding, channel multipliers 1 and 2, windows
1x1 (padded or strided, so not the scale), 2x3, 3x3, 5x5 and 9x9 (more taps than a row's table holds and than the
weight gradient's registers hold), batch 1."""
import numpy as np
import pytest
import torch

from cnn import _core
from conftest import DTYPES, assert_close
from test_conv2d import out_shape, torch_conv
from test_gemm_perf_paths import ISAS

# (n, c, h, w, m, kh, kw, stride, padding (top, bottom, left, right), dilation)
CASES = [
    (2, 3, 9, 41, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),      # 3x3 'same': 41 = 2 vectors (f32) + a ragged end
    (1, 2, 7, 37, 2, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),      # batch 1, multiplier 2: dx sums two planes
    (2, 3, 11, 45, 1, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1)),     # stride 2: two column phases in dx
    (1, 2, 12, 53, 1, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1)),     # 5x5 'same'
    (2, 2, 13, 71, 2, 5, 5, (2, 2), (2, 1, 0, 2), (1, 1)),     # 5x5 stride 2, asymmetric padding, multiplier 2
    (3, 2, 10, 50, 1, 3, 3, (3, 3), (0, 2, 1, 0), (1, 1)),     # stride 3 (gathered loads, three phases)
    (2, 3, 12, 47, 2, 3, 3, (1, 2), (2, 2, 2, 2), (2, 2)),     # dilation 2
    (1, 4, 6, 5, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),       # rows narrower than a vector: all edges
    (2, 3, 8, 40, 1, 2, 3, (1, 1), (0, 1, 2, 0), (1, 1)),      # even 2x3 window
    (2, 3, 7, 35, 2, 1, 1, (1, 1), (1, 0, 0, 1), (1, 1)),      # 1x1 padded: not the scale
    (1, 2, 9, 34, 1, 1, 1, (2, 3), (0, 0, 0, 0), (1, 1)),      # 1x1 strided
    (1, 2, 14, 44, 1, 9, 9, (1, 1), (4, 4, 4, 4), (1, 1)),     # 81 taps: row tables in two pieces, dw in three
    (2, 2, 9, 40, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),      # multiplier 8: dx's rows hold 72 taps
    (1, 3, 5, 33, 1, 3, 3, (1, 1), (3, 3, 0, 0), (1, 1)),      # whole output rows in the padding
    (17, 2, 6, 20, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),     # 17 samples summed in order
]


def make(rng, dtype, case):
    n, c, h, w, m, kh, kw, stride, pad, dil = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    k = rng.standard_normal((c * m, 1, kh, kw)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype)
    dy = rng.standard_normal(out_shape(n, h, w, c * m, kh, kw, stride, pad, dil)).astype(dtype)
    return x, k, b, dy, (stride, pad, dil, c)


def run(x, k, b, dy, geo, with_dx=True, accumulate=True, dw0=None):
    """cnn's (y, dx, dw, db), with y and dx NaN before the call (no stale reads) and dw, db from dw0 (or 0)."""
    assert _core.conv2d_scratch_size(x.shape, k.shape, *geo) == 0
    y = np.full(dy.shape, np.nan, x.dtype)
    _core.conv2d_forward(y, x, k, b, None, *geo)
    dx = np.full_like(x, np.nan) if with_dx else None
    dw = np.zeros_like(k) if dw0 is None else dw0[0].copy()
    db = None if b is None else np.zeros_like(b) if dw0 is None else dw0[1].copy()
    _core.conv2d_backward(dx, dw, db, dy, x, k, None, *geo, accumulate)
    return y, dx, dw, db


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_depthwise_matches_torch(rng, isa, name, dtype, case):
    x, k, b, dy, geo = make(rng, dtype, case)
    assert _core._conv2d_path(x.shape, k.shape, *geo) == "depthwise direct"
    _core._set_gemm_isa(name)
    xt, wt, bt, yt = torch_conv(x, k, b, *geo)
    yt.backward(torch.tensor(dy))
    y, dx, dw, db = run(x, k, b, dy, geo)
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(dx, xt.grad.numpy(), dtype)
    assert_close(dw, wt.grad.numpy(), dtype)
    assert_close(db, bt.grad.numpy(), dtype)
    # without dx the weight and bias gradients are the same bits; accumulate adds onto what dw and db held
    _, none, dw2, db2 = run(x, k, b, dy, geo, with_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)
    start = (np.ones_like(k), np.full_like(b, 2))
    _, _, dw3, db3 = run(x, k, b, dy, geo, dw0=start)
    np.testing.assert_array_equal(dw3, dw + 1)
    np.testing.assert_array_equal(db3, db + 2)
    _, _, dw4, db4 = run(x, k, b, dy, geo, accumulate=False, dw0=start)
    np.testing.assert_array_equal(dw4, dw)
    np.testing.assert_array_equal(db4, db)


def random_cases(rng, count):
    """count random depthwise geometries: odd sizes, batch 1 to 3, strides 1-3, dilation 1-2, padding 0-3 each side,
    multiplier 1 or 2, windows 1-5 each way (the 1x1 scale left out)"""
    found = []
    while len(found) < count:
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        case = (int(rng.integers(1, 4)), int(rng.integers(2, 4)), int(rng.integers(1, 15)), int(rng.integers(1, 60)),
                int(rng.integers(1, 3)), kh, kw, tuple(int(v) for v in rng.integers(1, 4, 2)),
                tuple(int(v) for v in rng.integers(0, 4, 4)), tuple(int(v) for v in rng.integers(1, 3, 2)))
        n, c, h, w, m, kh, kw, stride, pad, dil = case
        try:
            shape = out_shape(n, h, w, c * m, kh, kw, stride, pad, dil)
            path = _core._conv2d_path((n, c, h, w), (c * m, 1, kh, kw), stride, pad, dil, c)
        except ValueError:  # no output position
            continue
        if min(shape) > 0 and path == "depthwise direct" and (kh, kw, stride, pad) != (1, 1, (1, 1), (0, 0, 0, 0)):
            found.append(case)
    return found


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_random_geometries_match_torch(rng, dtype):
    for case in random_cases(rng, 60):
        x, k, b, dy, geo = make(rng, dtype, case)
        xt, wt, bt, yt = torch_conv(x, k, b, *geo)
        yt.backward(torch.tensor(dy))
        for got, want in zip(run(x, k, b, dy, geo), (yt.detach(), xt.grad, wt.grad, bt.grad)):
            assert_close(got, want.numpy(), dtype)


@pytest.mark.parametrize("case", CASES[:6] + CASES[11:13])
def test_depthwise_bitwise_across_threads(rng, case):
    """The same bits at 1, 2 and 3 threads: threads own whole planes and channels, each sum in a fixed order."""
    x, k, b, dy, geo = make(rng, np.float32, case)
    old = _core.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results.append(run(x, k, b, dy, geo))
    finally:
        _core.set_num_threads(old)
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


def test_depthwise_worked_example():
    """Two channels, each the 3x3 image [[1 2 3], [4 5 6], [7 8 9]] (the second doubled) with the 2x2 window
    [[1 0], [0 1]]: y = [[1+5, 2+6], [4+8, 5+9]] = [[6 8], [12 14]], doubled for the second; with dy = 1 each
    tap's gradient is the sum of the four cells it saw, 1+2+4+5 = 12 for tap (0, 0)."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3) * np.array([1.0, 2.0]).reshape(1, 2, 1, 1)
    k = np.tile(np.array([[1.0, 0.0], [0.0, 1.0]]), (2, 1, 1, 1))
    geo = ((1, 1), (0, 0, 0, 0), (1, 1), 2)
    y, dx, dw, db = run(x, k, np.zeros(2), np.ones((1, 2, 2, 2)), geo)
    np.testing.assert_array_equal(y[0, 0], [[6, 8], [12, 14]])
    np.testing.assert_array_equal(y[0, 1], [[12, 16], [24, 28]])
    np.testing.assert_array_equal(dw[0, 0], [[12, 16], [24, 28]])
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 2, 1], [0, 1, 1]])
    np.testing.assert_array_equal(db, [4, 4])


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_adjoint_against_reference(rng, dtype):
    """Without torch, so the sanitizer build runs it too (its reads at the rows' ends and stride-2 loads must stay
    inside x and dy): the forward is reference.c's loop nest, and the gradients its adjoints, <y, dy> = <x, dx> =
    <w, dw>, on every instance."""
    tol = 1e-10 if dtype == np.float64 else 1e-4
    for name in ISAS:
        _core._set_gemm_isa(name)
        try:
            for case in random_cases(rng, 25) + CASES:
                x, k, _, dy, geo = make(rng, dtype, case)
                ref = np.full(dy.shape, np.nan, dtype)
                _core._conv2d_reference_forward(ref, x, k, None, *geo)
                y, dx, dw, _ = run(x, k, None, dy, geo)
                assert_close(y, ref, dtype, factor=10)
                inner = np.vdot(ref.astype(np.float64), dy)
                scale = np.linalg.norm(ref.astype(np.float64)) * np.linalg.norm(dy)
                assert abs(np.vdot(x.astype(np.float64), dx) - inner) <= tol * scale, case
                assert abs(np.vdot(k.astype(np.float64), dw) - inner) <= tol * scale, case
        finally:
            _core._set_gemm_isa("auto")
