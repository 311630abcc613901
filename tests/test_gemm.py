"""gemm against NumPy (float64 products) in every form the layers use."""
import numpy as np
import pytest

from cnn import _core
from conftest import DTYPES, assert_close

SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (7, 13, 5), (6, 32, 32), (13, 300, 37), (50, 784, 500), (97, 257, 65)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_forms(rng, dtype, m, k, n, ta, tb):
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    ref = a @ b
    a_arg = np.ascontiguousarray(a.T if ta else a, dtype)
    b_arg = np.ascontiguousarray(b.T if tb else b, dtype)
    c = np.full((m, n), np.nan, dtype)
    _core.gemm(c, a_arg, b_arg, ta, tb)
    assert_close(c, ref, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    _core.gemm(c, a_arg, b_arg, ta, tb, True)
    assert_close(c, c0.astype(np.float64) + ref, dtype)


def test_gemm_rejects_mismatch():
    a, b = np.ones((3, 4)), np.ones((5, 2))
    with pytest.raises(ValueError, match="'b' must have shape \\(4, \\?\\)"):
        _core.gemm(np.empty((3, 2)), a, b)
    with pytest.raises(ValueError, match="'c'"):
        _core.gemm(np.empty((2, 2)), a, np.ones((4, 2)))
    with pytest.raises(TypeError, match="float64"):
        _core.gemm(np.empty((3, 2), np.float32), a, np.ones((4, 2)))
