"""conv2d's Winograd path, F(2x2, 3x3) (csrc/conv2d_winograd.h), forced onto every 3x3 stride-1 convolution by
_set_conv2d_winograd('always') so that small shapes reach it: forward, input and weight gradients against
PyTorch (float64 to 1e-10, float32 to 1e-5 relative, as every path) and against the direct path, on odd sizes
(tiles cut by the output's last row and column), padding 0, 1 and 2 on each side apart, batch 1, channel counts
past the gemm's register tiles, more tiles than one block and more blocks than the 16 chunks; bitwise the same
at 1, 2 and 3 threads; NaN in the scratch before each call. The float32 error bound the kernel's header states is
measured here on normal and wide-range data."""
import numpy as np
import pytest
import torch

from cnn import _core
from conftest import DTYPES, assert_close, rel_err
from test_conv2d import assert_matches_torch, make, run_conv, torch_conv
from test_conv2d_direct import check_nan_scratch_and_adjoints
from test_gemm_perf_paths import ISAS

WINOGRAD = "winograd F(2x2,3x3)"

# (n, c, h, w, oc, kh, kw, stride, padding (top, bottom, left, right), dilation, groups)
CASES = [
    (1, 3, 7, 9, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),       # batch 1, odd output: half tiles
    (2, 17, 11, 6, 19, 3, 3, (1, 1), (0, 2, 1, 0), (1, 1), 1),    # asymmetric padding, ragged channels
    (3, 16, 8, 8, 33, 3, 3, (1, 1), (2, 2, 2, 2), (1, 1), 1),     # padding 2: outputs wider than the input
    (2, 5, 3, 4, 7, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),       # unpadded: a 1x2 output, one tile
    (1, 1, 1, 2, 1, 3, 3, (1, 1), (2, 0, 1, 2), (1, 1), 1),       # one channel, a 1x2 input, pads alone
    (3, 64, 16, 15, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),   # 3·8·9 tiles (a junk one a row): two blocks
    (2, 64, 63, 65, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),   # 2·32·34 tiles: 17 blocks over 16 chunks
    (1, 64, 70, 66, 64, 3, 3, (1, 1), (1, 0, 0, 1), (1, 1), 1),   # 35·34 tiles of one sample: 10 blocks
]


@pytest.fixture
def winograd():
    _core._set_conv2d_winograd("always")
    yield
    _core._set_conv2d_winograd("auto")
    _core._set_gemm_isa("auto")


def geometry(case):
    return case[7:]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_winograd_matches_torch(rng, winograd, dtype, case):
    x, k, b, dy, *geo = make(rng, dtype, case)
    assert _core._conv2d_path(x.shape, k.shape, *geo) == WINOGRAD
    _, _, dw, _ = assert_matches_torch(x, k, b, dy, *geo, dtype)
    _, no_dx, dw2, _ = run_conv(x, k, b, *geo, dy, with_dx=False)  # dw without dx: the same bits
    assert no_dx is None
    np.testing.assert_array_equal(dw2, dw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[:6])
def test_winograd_matches_the_direct_path(rng, winograd, dtype, case):
    x, k, b, dy, *geo = make(rng, dtype, case)
    ours = run_conv(x, k, b, *geo, dy)
    _core._set_conv2d_winograd("never")
    assert _core._conv2d_path(x.shape, k.shape, *geo) != WINOGRAD
    for got, want in zip(ours, run_conv(x, k, b, *geo, dy)):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("name", ISAS)
def test_winograd_on_every_gemm_instance(rng, winograd, name):
    _core._set_gemm_isa(name)
    assert_matches_torch(*make(rng, np.float32, CASES[5]), np.float32)


@pytest.mark.parametrize("case", [CASES[2], CASES[6], CASES[7]])
def test_winograd_deterministic_across_threads(rng, winograd, case):
    """Bitwise the same at 1, 2 and 3 threads: blocks are fixed by the sizes, dw sums them in 16 fixed chunks."""
    x, k, b, dy, *geo = make(rng, np.float32, case)
    old = _core.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results.append(run_conv(x, k, b, *geo, dy))
    finally:
        _core.set_num_threads(old)
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_reads_no_scratch_it_did_not_write(rng, winograd, dtype):
    """check_nan_scratch_and_adjoints on the Winograd cases. Needs no torch, so it also runs under the sanitizer
    build."""
    for case in CASES[:6]:
        check_nan_scratch_and_adjoints(rng, dtype, case[:4], (case[4], case[1], 3, 3), geometry(case))


@pytest.mark.parametrize("wide", [False, True])
def test_winograd_float32_error(rng, winograd, wide):
    """The bound conv2d_winograd.h states: float32 against float64 PyTorch, 2.7e-7 in norm for y, dx and dw, and
    per output 1.6e-7 of Σ|x|·|w| on normal data, 2.4e-6 on data spanning 8 decades (asserted with headroom)."""
    x, k, b = rng.standard_normal((4, 64, 30, 30)), rng.standard_normal((64, 64, 3, 3)), rng.standard_normal(64)
    if wide:
        x *= 10 ** rng.uniform(-4, 4, x.shape)
        k *= 10 ** rng.uniform(-2, 2, k.shape)
    dy, geo = rng.standard_normal((4, 64, 30, 30)), ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    xt, wt, _, yt = torch_conv(x, k, b, *geo)
    yt.backward(torch.tensor(dy))
    y, dx, dw, _ = run_conv(*(a.astype(np.float32) for a in (x, k, b)), *geo, dy.astype(np.float32))
    for got, want in ((y, yt.detach().numpy()), (dx, xt.grad.numpy()), (dw, wt.grad.numpy())):
        assert rel_err(got, want) <= 5e-7
    pad = torch.nn.functional.pad(torch.tensor(np.abs(x)), (1, 1, 1, 1))
    magnitude = torch.nn.functional.conv2d(pad, torch.tensor(np.abs(k))).numpy() + np.abs(b)[None, :, None, None]
    assert (np.abs(y - yt.detach().numpy()) / magnitude).max() <= (5e-6 if wide else 4e-7)


@pytest.mark.parametrize("x_shape,w_shape,pad,path", [
    ((16, 64, 56, 56), (64, 64, 3, 3), (1, 1, 1, 1), WINOGRAD),       # B8's 3x3 row
    ((16, 64, 40, 40), (128, 64, 3, 3), (0, 2, 1, 1), WINOGRAD),
    ((16, 64, 28, 28), (64, 64, 3, 3), (1, 1, 1, 1), "direct phases"),  # planes below 40x40
    ((16, 32, 56, 56), (32, 32, 3, 3), (1, 1, 1, 1), "direct phases"),  # fewer than 64 channels
    ((16, 64, 56, 56), (64, 32, 3, 3), (1, 1, 1, 1), "im2col tiles"),   # grouped (2 groups)
])
def test_winograd_path_choice(x_shape, w_shape, pad, path):
    groups = x_shape[1] // w_shape[1]
    assert _core._conv2d_path(x_shape, w_shape, (1, 1), pad, (1, 1), groups) == path


def test_set_conv2d_winograd_checks_its_mode():
    with pytest.raises(ValueError, match="_set_conv2d_winograd: argument 'mode' must be one of"):
        _core._set_conv2d_winograd("sometimes")
