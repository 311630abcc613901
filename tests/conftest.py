"""Shared test helpers: the parity measure and its tolerances, central differences, the thread-count and gemm-ISA
fixtures and fresh automatic layer names for every test."""
import numpy as np
import pytest

from cnn import _core

# relative error = ||got - ref|| / ||ref||; float32 kernels accumulate in float32 like PyTorch's
TOL = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = [np.float32, np.float64]


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(got - ref) / (denom if denom > 0 else 1.0))


# the largest relative error each dtype showed in this run, reported at the end of the session
LARGEST = {}


def assert_close(got, ref, dtype, factor=1.0):
    err = rel_err(got, ref)
    name = np.dtype(dtype).name
    LARGEST[name] = max(LARGEST.get(name, 0.0), err)
    assert err <= TOL[dtype] * factor, f"relative error {err:.3e} > {TOL[dtype] * factor:.1e}"


def pytest_terminal_summary(terminalreporter):
    if LARGEST:
        terminalreporter.write_line("largest parity error (relative): " + ", ".join(
            f"{name} {err:.2e}" for name, err in sorted(LARGEST.items())))


def central_differences(f, arr, eps=1e-6):
    """The gradient of the scalar f() with respect to arr by central differences: each entry of arr is moved
    by +eps and -eps in place (f reads arr), and put back before the next."""
    num = np.empty_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        up = f()
        arr[i] = old - eps
        down = f()
        arr[i] = old
        num[i] = (up - down) / (2 * eps)
    return num


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def fresh_names():
    """Every test starts its automatic names afresh ('dense', 'dense_1', ...), as after Keras' clear_session."""
    from cnn.utils import clear_session

    clear_session()


@pytest.fixture
def restore_threads():
    """The test may change cnn's OpenMP thread count; the count it found is set back afterwards."""
    import cnn

    saved = cnn.get_num_threads()
    yield
    cnn.set_num_threads(saved)


# Hypothesis draws the same examples every run (no example database): the default suite and CI are
# deterministic, and a failure found once is found again. HYPOTHESIS_RANDOM=1 explores new examples.
try:
    import os

    from hypothesis import settings

    settings.register_profile("deterministic", derandomize=True, database=None)
    settings.register_profile("random", database=None)
    settings.load_profile("random" if os.environ.get("HYPOTHESIS_RANDOM") == "1" else "deterministic")
except ImportError:
    pass


@pytest.fixture
def isa():
    """For tests that force gemm's instruction set (_core._set_gemm_isa): restores the widest afterwards."""
    yield
    _core._set_gemm_isa("auto")
