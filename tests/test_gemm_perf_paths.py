"""gemm's performance paths against NumPy (float64 products): every instruction-set instance this CPU
runs, edge tiles in both directions, the in-place and packed paths, several KC slices, NN/NT/TN/TT,
accumulate (each instance also against reference.c's triple loop), and bitwise-identical results for 1, 2 and
16 threads."""
import numpy as np
import pytest

import cnn
from cnn import _core
from conftest import DTYPES, TOL, assert_close, rel_err



def supported(name):
    try:
        _core._set_gemm_isa(name)
        return True
    except ValueError:
        return False
    finally:
        _core._set_gemm_isa("auto")


ISAS = [name for name in ("base", "avx2", "avx512") if supported(name)]
FORMS = [(False, False), (True, False), (False, True), (True, True)]
# rows hit every edge-tile height (MR = 6, and 12 on AVX-512: remainders 1-11); columns straddle one and two
# vectors of every width; k > 256 crosses a KC slice (f32: 256, f64: 128); M > 192 and N > 256 take the
# packed path
SHAPES = [(1, 1, 1), (2, 3, 5), (4, 17, 9), (5, 129, 7), (7, 5, 17), (11, 260, 33), (13, 40, 65),
          (50, 130, 10), (97, 31, 41), (103, 300, 140), (130, 70, 300), (31, 513, 270), (3, 20, 40),
          (6, 33, 19), (8, 70, 50), (9, 12, 3), (22, 40, 33)]


def operands(rng, m, k, n, ta, tb, dtype):
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    return a, b, np.ascontiguousarray(a.T if ta else a, dtype), np.ascontiguousarray(b.T if tb else b, dtype)


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", FORMS)
def test_every_instance_and_edge(rng, isa, name, dtype, ta, tb):
    _core._set_gemm_isa(name)
    assert _core._gemm_isa() == name
    for m, k, n in SHAPES:
        a, b, a_arg, b_arg = operands(rng, m, k, n, ta, tb, dtype)
        c = np.full((m, n), np.nan, dtype)
        _core.gemm(c, a_arg, b_arg, ta, tb)
        assert_close(c, a @ b, dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        c = c0.copy()
        _core.gemm(c, a_arg, b_arg, ta, tb, True)
        assert_close(c, c0.astype(np.float64) + a @ b, dtype)
        ref = c0.copy()  # and against the triple loop of reference.c, float64 to 1e-12
        _core._gemm_reference(ref, a_arg, b_arg, ta, tb, True)
        assert rel_err(c, ref) <= {np.float32: TOL[np.float32], np.float64: 1e-12}[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(50, 784, 500), (784, 50, 500), (50, 500, 784), (300, 300, 300),
                                   (2000, 25, 6), (40, 150, 16), (1, 400, 120)])
@pytest.mark.parametrize("ta,tb", FORMS)
def test_layer_shapes_bitwise_across_threads(rng, restore_threads, dtype, m, k, n, ta, tb):
    assert_same_bits_at_thread_counts(rng, dtype, m, k, n, ta, tb, (1, 2, 16))


def assert_same_bits_at_thread_counts(rng, dtype, m, k, n, ta, tb, counts):
    """c += a·b accumulated at each thread count: right at the first, and the same bits at the others."""
    a, b, a_arg, b_arg = operands(rng, m, k, n, ta, tb, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    results = []
    for threads in counts:
        cnn.set_num_threads(threads)
        c = c0.copy()
        _core.gemm(c, a_arg, b_arg, ta, tb, True)
        results.append(c)
    assert_close(results[0], c0.astype(np.float64) + a @ b, dtype)
    for c in results[1:]:
        assert np.array_equal(c, results[0]), (m, k, n)


# the blocking's edges (gemm_tile.h): M around MC = 192 (b packed above it), N around NA = 256 (a packed above
# it) and NC = 256 (several column blocks), K around KC (f32 256, f64 128); odd sizes leave edge tiles
# in both directions in every block
BLOCK_SHAPES = [(191, 129, 257), (193, 257, 255), (200, 70, 1030), (12, 300, 1025), (385, 127, 33),
                (25, 513, 1023)]


@pytest.mark.parametrize("name", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta,tb", FORMS)
def test_block_edges_bitwise_across_threads(rng, restore_threads, isa, name, dtype, ta, tb):
    _core._set_gemm_isa(name)
    for m, k, n in BLOCK_SHAPES:
        assert_same_bits_at_thread_counts(rng, dtype, m, k, n, ta, tb, (1, 2, 3))


def test_set_gemm_isa_rejects_unknown_names():
    with pytest.raises(ValueError, match="_set_gemm_isa: argument 'name' must be one of"):
        _core._set_gemm_isa("neon")
    with pytest.raises(TypeError):
        _core._set_gemm_isa(2)
