"""gemm against NumPy (float64 products) in every form the layers use, and against reference.c's triple loop."""
import os
import subprocess
import sys
import numpy as np
import pytest

import cnn
from cnn import _core
from conftest import DTYPES, TOL, assert_close, rel_err

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


# Against reference.c's triple loop, the statement of gemm: every form, sizes of 1 and primes that straddle the
# register tile (6 rows, vectors of 2 to 16) and a KC slice (f64: 128 deep), and the layer sizes above.
FORMS = [(False, False), (True, False), (False, True), (True, True)]
ODD = [(1, 1, 1), (1, 13, 1), (2, 3, 5), (7, 1, 11), (13, 17, 19), (31, 257, 37), (61, 131, 3)]


def operands(rng, m, k, n, ta, tb, dtype):
    """a (m, k) and b (k, n) in dtype, stored transposed where the form says; also as float64, used as stored."""
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b, (a.T if ta else a).astype(np.float64), (b.T if tb else b).astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", ODD)
@pytest.mark.parametrize("ta,tb", FORMS)
def test_reference_is_the_product(rng, dtype, m, k, n, ta, tb):
    """The oracle itself: the float64 product of the same operands, rounded once to dtype (it sums in double)."""
    a, b, a64, b64 = operands(rng, m, k, n, ta, tb, dtype)
    c = np.full((m, n), np.nan, dtype)
    _core._gemm_reference(c, a, b, ta, tb)
    assert rel_err(c, a64 @ b64) <= {np.float32: 1e-7, np.float64: 1e-14}[dtype]
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = c0.copy()
    _core._gemm_reference(c, a, b, ta, tb, True)
    assert rel_err(c, c0 + a64 @ b64) <= {np.float32: 1e-7, np.float64: 1e-14}[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", ODD + SHAPES[-3:])
@pytest.mark.parametrize("ta,tb", FORMS)
@pytest.mark.parametrize("accumulate", [False, True])
def test_gemm_matches_reference(rng, dtype, m, k, n, ta, tb, accumulate):
    """The blocked, vectorized gemm against the triple loop: float64 to 1e-12; float32 sums in float32."""
    a, b, _, _ = operands(rng, m, k, n, ta, tb, dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    fast, ref = c0.copy(), c0.copy()
    _core.gemm(fast, a, b, ta, tb, accumulate)
    _core._gemm_reference(ref, a, b, ta, tb, accumulate)
    assert rel_err(fast, ref) <= {np.float32: TOL[np.float32], np.float64: 1e-12}[dtype]


def test_reference_worked_example():
    # [[1 2], [3 4]] · [[5 6], [7 8]] = [[1·5 + 2·7, 1·6 + 2·8], [3·5 + 4·7, 3·6 + 4·8]]; bᵀ stored for NT
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0], [7.0, 8.0]])
    for fn in (_core.gemm, _core._gemm_reference):
        c = np.empty((2, 2))
        fn(c, a, np.ascontiguousarray(b.T), False, True)
        np.testing.assert_array_equal(c, [[19, 22], [43, 50]])


def test_reference_checks_its_arguments():
    a, b = np.ones((3, 4)), np.ones((5, 2))
    with pytest.raises(ValueError, match="_gemm_reference: argument 'b' must have shape \\(4, \\?\\)"):
        _core._gemm_reference(np.empty((3, 2)), a, b)
    buf = np.ones(12)
    with pytest.raises(ValueError, match="output 'c' must not overlap input 'a'"):
        _core._gemm_reference(buf[:6].reshape(3, 2), buf.reshape(3, 4), np.ones((4, 2)))


@pytest.mark.skipif(os.environ.get("CNN_SANITIZE") == "1",
                    reason="AddressSanitizer's redzones multiply each frame's stack; the bound is the real build's")
def test_gemm_runs_in_a_thread_with_a_small_stack():
    """gemm's packed panels live on the stack: a thread started with 512 KiB (threading.stack_size) must finish
    a large product in both dtypes. At 1.2 MiB of panels this crashed the interpreter, so it runs in a child."""
    code = (
        "import sys, threading, numpy as np\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(cnn.__file__)))!r})\n"
        "from cnn import _core\n"
        "threading.stack_size(512 * 1024)\n"
        "def run():\n"
        "    for t in (np.float32, np.float64):\n"
        "        a = np.ones((1024, 1024), t); c = np.empty_like(a)\n"
        "        _core.gemm(c, a, a)\n"
        "        assert c[5, 7] == 1024\n"
        "    print('done')\n"
        "th = threading.Thread(target=run); th.start(); th.join()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "done", (out.returncode, out.stderr[-2000:])
