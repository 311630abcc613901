"""conv2d's direct path (csrc/conv2d_direct.h, csrc/conv_direct.c) on every instruction-set instance this CPU
runs, against PyTorch: forward, input and weight gradients. The shapes reach every edge of its kernels'
register tiles: output channels 1-7 past a multiple of 8 (offset_gemm's rows) and of 16 or 32 (window_gemm's
and window3_gemm's columns), taps past a multiple of 12 (window_gemm's rows) and rows of taps past 8
(window3_gemm's, for 3-wide undilated windows at stride 1), positions ragged against 16-48 (a tile's
columns), C·KH·KW > 256 (KC slices), strides 2 and 3 (four and nine phase planes, some with one tap),
dilation, asymmetric padding, batch 1 and non-square images. Tolerances are the suite's (TOL): float64 to
1e-10 and float32 to 1e-5 relative, as im2col's path."""
import numpy as np
import pytest

from cnn import _core
from conftest import DTYPES, assert_close
from test_conv2d import assert_matches_torch, assert_same_bits_at_thread_counts, make, out_shape, run_conv
from test_gemm_perf_paths import ISAS

# (n, c, h, w, oc, kh, kw, stride, padding (top, bottom, left, right), dilation, groups)
DIRECT = [
    (1, 16, 32, 32, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),    # ResNet-20's first stage, batch 1
    (2, 3, 17, 15, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),     # the stem: 27 taps
    (3, 16, 11, 9, 35, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),     # stride 2: phase planes with 4, 2, 2, 1 taps
    (2, 33, 8, 8, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),      # 297 taps: 2 KC slices (f32), 3 (f64)
    (2, 5, 9, 12, 7, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),       # no padding, 7 output channels
    (2, 4, 7, 9, 21, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),       # 21 channels: window3_gemm's ragged 2 vectors
    (1, 4, 13, 10, 13, 3, 5, (3, 2), (2, 0, 1, 3), (1, 1), 1),     # strides 3 and 2, asymmetric pads
    (2, 6, 12, 11, 9, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),      # dilated
    (2, 2, 10, 7, 3, 2, 4, (2, 2), (1, 0, 0, 1), (1, 1), 1),       # even kernels
    (1, 1, 5, 5, 1, 1, 3, (1, 1), (0, 0, 1, 1), (1, 1), 1),        # one channel, one row of taps
    # the forward's rows share their left and right zero padding (s cells): the junk columns per row, and the
    # 96-position blocks y is compacted from, end anywhere in a row
    (2, 5, 9, 23, 17, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), 1),      # 5x5 padded by 2: s = 2, three blocks
    (1, 3, 6, 40, 9, 3, 3, (1, 1), (1, 1, 2, 0), (1, 1), 1),       # no right padding: s = 0
    (2, 4, 7, 8, 10, 3, 3, (1, 1), (3, 3, 3, 3), (1, 1), 1),       # padding past the taps' reach: s = msj, no junk
    (2, 3, 30, 27, 18, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1),     # the 7x7 stride-2 stem: s = 1 over two planes
    (3, 2, 40, 3, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),       # rows of 3 outputs: a block spans 24 rows
]


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DIRECT)
def test_direct_path_matches_torch(rng, isa, name, dtype, case):
    x, k, b, dy, stride, pad, dil, groups = make(rng, dtype, case)
    assert _core._conv2d_path(x.shape, k.shape, stride, pad, dil, groups) == "direct phases"
    _core._set_gemm_isa(name)
    _, _, dw, _ = assert_matches_torch(x, k, b, dy, stride, pad, dil, groups, dtype)
    # without the input gradient the weight gradient is the same, bit for bit
    _, no_dx, dw2, _ = run_conv(x, k, b, stride, pad, dil, groups, dy, with_dx=False)
    assert no_dx is None
    np.testing.assert_array_equal(dw2, dw)


@pytest.mark.parametrize("name", ISAS)
def test_direct_path_instances_agree_closely(rng, isa, name):
    """Each instance sums in its own lanes, so instances differ only by rounding."""
    x, k, b, dy, stride, pad, dil, groups = make(rng, np.float64, DIRECT[2])
    _core._set_gemm_isa("base")
    ref = run_conv(x, k, b, stride, pad, dil, groups, dy)
    _core._set_gemm_isa(name)
    for got, want in zip(run_conv(x, k, b, stride, pad, dil, groups, dy), ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [DIRECT[10], DIRECT[13], (9, 8, 11, 10, 24, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1)])
def test_direct_forward_deterministic_across_threads(rng, case):
    """Bitwise the same y at 1, 2, 3 and 16 threads: up to 3 a thread keeps one buffer for all its samples, at 16
    (more threads than chunks) each chunk has its own."""
    assert_same_bits_at_thread_counts(rng, case)


def random_direct_geometries(rng, count):
    """count geometries the direct path takes, drawn over its edges: width or height 1, batch 1 and batches past
    the reduction chunks, stride up to the window (3 with a 3-wide one), dilation, uneven padding."""
    found = []
    while len(found) < count:
        kh, kw = (int(k) for k in rng.integers(1, 6, 2))
        sh, sw = int(rng.integers(1, kh + 1)), int(rng.integers(1, kw + 1))
        dil = tuple(1 if s > 1 else int(rng.choice([1, 2, 3])) for s in (sh, sw))
        xs = (int(rng.choice([1, 2, 17])), int(rng.choice([1, 3, 16, 33])), int(rng.choice([1, 2, 7, 13])),
              int(rng.choice([1, 2, 7, 13])))
        ws = (int(rng.choice([1, 3, 17, 33])), xs[1], kh, kw)
        pad = tuple(int(p) for p in rng.integers(0, 3, 4))
        try:
            if _core._conv2d_path(xs, ws, (sh, sw), pad, dil, 1) == "direct phases":
                found.append((xs, ws, ((sh, sw), pad, dil, 1)))
        except ValueError:  # no output position
            pass
    return found


def check_nan_scratch_and_adjoints(rng, dtype, xs, ws, args):
    """NaN in the whole scratch before the forward and again before the backward (a model's layers share one
    scratch, so the backward finds another layer's data there), and NaN in dx and dw: the forward is the
    reference loop's, and the gradients are its adjoints, <y, dy> = <x, dx> = <w, dw>, all finite."""
    tol = 1e-10 if dtype == np.float64 else 1e-4
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    shape = out_shape(xs[0], xs[2], xs[3], ws[0], ws[2], ws[3], *args[:3])
    dy = rng.standard_normal(shape).astype(dtype)
    scratch = np.full(_core.conv2d_scratch_size(xs, ws, *args), np.nan, dtype)
    y, ref = np.empty(shape, dtype), np.empty(shape, dtype)
    _core.conv2d_forward(y, x, w, None, scratch, *args)
    _core._conv2d_reference_forward(ref, x, w, None, *args)
    assert_close(y, ref, dtype)
    scratch.fill(np.nan)
    dx, dw = np.full_like(x, np.nan), np.full_like(w, np.nan)
    _core.conv2d_backward(dx, dw, None, dy, x, w, scratch, *args, False)
    assert np.isfinite(dx).all() and np.isfinite(dw).all(), (xs, ws, args)
    inner = np.vdot(ref.astype(np.float64), dy)
    scale = np.linalg.norm(ref.astype(np.float64)) * np.linalg.norm(dy)
    assert abs(np.vdot(x.astype(np.float64), dx) - inner) <= tol * scale, (xs, ws, args)
    assert abs(np.vdot(w.astype(np.float64), dw) - inner) <= tol * scale, (xs, ws, args)


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_path_reads_no_scratch_it_did_not_write(rng, dtype):
    """check_nan_scratch_and_adjoints on 40 drawn geometries. Needs no torch, so it also runs under the sanitizer
    build, which checks the reads past each window stay inside the scratch."""
    for xs, ws, args in random_direct_geometries(rng, 40):
        check_nan_scratch_and_adjoints(rng, dtype, xs, ws, args)
