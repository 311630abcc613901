"""Fuzzing the whole C binding surface: every cnn._core function, called with random argument lists
(wrong types and dtypes, ranks 0 to 5, zero and huge sizes, sizes and layer widths at the int32 and int64
boundaries, strided, Fortran-ordered, read-only, misaligned and aliased arrays, NaN and inf, None,
out-of-range labels and enum codes) either works or raises TypeError/ValueError/MemoryError/OverflowError;
it never crashes, not even while a second thread rewrites every array argument during the calls. Valid
calls must work.

The calls come from the signatures the bindings' docstrings state, parsed in core_signatures.py.
Hypothesis draws one seed per case and the case is built from it (drawing every choice through Hypothesis
costs 4x the time, and a reported seed reproduces the case exactly:
fuzz_case(row, RandomPick(np.random.default_rng(seed)))).
CNN_FUZZ_EXAMPLES sets the examples per row of the default run; `pytest -m slow` runs at least
100,000 cases in all. No torch here: this file also runs under AddressSanitizer (tests/sanitize.sh)."""
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core_signatures import SIGNATURES, RandomPick, bindings, call, fuzz_case, run_python, valid_call

EXAMPLES = int(os.environ.get("CNN_FUZZ_EXAMPLES", "100"))
LONG_RUN_CASES = 100_000
ROWS = [pytest.param(row, id=f"{row.name}-{i}") for i, row in enumerate(SIGNATURES)]


def fuzz(row, examples):
    """Run `examples` cases of one row and return how many ran; shrinking a seed means nothing, so that
    phase is off."""
    seeds = set()

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 2**64 - 1))
    def run(seed):
        seeds.add(seed)
        fuzz_case(row, RandomPick(np.random.default_rng(seed)))

    run()
    return len(seeds)


def test_every_binding_has_a_row():
    missing = sorted(set(bindings()) - {row.name for row in SIGNATURES})
    assert not missing, f"add a row to SIGNATURES in tests/core_signatures.py for: {', '.join(missing)}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", ROWS)
def test_valid_calls_work(row, dtype):
    pick = RandomPick(np.random.default_rng(0))
    for _ in range(20):
        call(row, valid_call(row, pick, dtype))


@pytest.mark.parametrize("row", ROWS)
def test_fuzz(row):
    assert fuzz(row, EXAMPLES) >= 0.95 * EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS)
def test_fuzz_long(row, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long fuzz run: select it with `pytest -m slow`")
    cases = math.ceil(LONG_RUN_CASES / len(SIGNATURES))
    assert fuzz(row, cases) >= cases


def test_no_crash_in_a_subprocess():
    """The same fuzzing in a child process: a segfault or abort would show as its exit status."""
    cases = 4 * EXAMPLES * len(SIGNATURES)
    proc = run_python(f"import core_signatures; core_signatures.crash_run({cases}, seed=2024)")
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert f"{cases} cases, no crash" in proc.stdout


def hostile_run(cases, seed):
    proc = run_python(f"import core_signatures; core_signatures.crash_run({cases}, seed={seed}, hostile=True)",
                      timeout=1800)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert f"{cases} cases, no crash" in proc.stdout


def test_no_crash_with_a_second_thread_writing_every_array():
    """Every binding, its arrays rewritten by a second thread during the call (out-of-range indices, NaN):
    in a child process, so that a crash fails this test instead of ending the run."""
    hostile_run(EXAMPLES * len(SIGNATURES), seed=2025)


@pytest.mark.slow
def test_no_crash_with_a_second_thread_long(request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long fuzz run: select it with `pytest -m slow`")
    hostile_run(LONG_RUN_CASES, seed=2026)


def test_subprocess_check_sees_a_crash():
    proc = run_python("import ctypes; ctypes.string_at(0)")
    assert proc.returncode != 0

