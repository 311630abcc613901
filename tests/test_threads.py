"""The OpenMP thread count: OMP_NUM_THREADS at start, set/get process-wide (from any Python thread),
threadpoolctl, and kernels whose results do not depend on it (each output summed in the same order
whatever the thread count)."""
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import cnn
from cnn import _core
from cnn.layers import Dense

threadpoolctl = pytest.importorskip("threadpoolctl")


def test_omp_num_threads_is_honoured_at_start():
    env = dict(os.environ, OMP_NUM_THREADS="3", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", "import cnn; print(cnn.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def libgomp_wait_policy(**env):
    """OMP_WAIT_POLICY and GOMP_SPINCOUNT as libgomp read them when `import cnn` loaded it (OMP_DISPLAY_ENV
    prints them; an unset policy prints as PASSIVE with 300,000 spins), and whether OMP_WAIT_POLICY was in
    os.environ after the import."""
    env = dict({k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}, **env,
               OMP_DISPLAY_ENV="verbose", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", "import os, cnn; print('OMP_WAIT_POLICY' in os.environ)"], env=env,
                         capture_output=True, text=True, check=True)
    read = dict(re.findall(r"^\s*(OMP_WAIT_POLICY|GOMP_SPINCOUNT) = '(\w*)'", out.stderr, re.M))
    return read, out.stdout.strip()


@pytest.mark.skipif(not _core.HAVE_OPENMP, reason="built without OpenMP")
def test_libgomp_keeps_its_wait_policy():
    # an idle machine needs libgomp's spin for LeNet's short regions; contention is met by fewer threads
    read, leaked = libgomp_wait_policy()
    if "GOMP_SPINCOUNT" not in read:
        pytest.skip("the OpenMP runtime is not libgomp")
    assert (read, leaked) == ({"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "300000"}, "False")
    assert libgomp_wait_policy(GOMP_SPINCOUNT="12345")[0] == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "12345"}


def test_free_cores_counts_a_core_taken_once_others_use_a_quarter_of_it():
    from cnn._contention import free_cores

    assert [free_cores(2, o) for o in (0.0, 0.25, 0.3, 1.0, 1.2, 1.3, 2.0, 5.0)] == [2, 2, 1, 1, 1, 1, 1, 1]
    assert [free_cores(16, o) for o in (0.0, 0.2, 0.9, 1.25, 3.5, 20.0)] == [16, 16, 15, 15, 12, 1]


@pytest.mark.skipif(not _core.HAVE_OPENMP, reason="built without OpenMP")
def test_a_thread_cap_limits_only_the_thread_that_set_it(restore_threads):
    cnn.set_num_threads(3)
    seen = {}

    def other():
        seen["other"] = cnn.get_num_threads()

    _core._cap_threads(1)
    try:
        seen["capped"] = cnn.get_num_threads()
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    finally:
        _core._cap_threads(0)
    assert seen == {"capped": 1, "other": 3} and cnn.get_num_threads() == 3
    with pytest.raises(ValueError, match=r"_cap_threads: argument 'n' must lie in \[0, 1024\], got -1"):
        _core._cap_threads(-1)


@pytest.mark.skipif(not _core.HAVE_OPENMP or not hasattr(os, "sched_getaffinity") or
                    not os.path.exists("/proc/stat"), reason="needs OpenMP and Linux's /proc/stat")
def test_a_fit_uses_fewer_threads_while_other_processes_hold_the_cores(restore_threads):
    from cnn._contention import INTERVAL

    cnn.set_num_threads(2)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)]
    try:
        time.sleep(2 * INTERVAL)  # a window in which others hold every core
        counts = []

        class Record(cnn.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                counts.append(cnn.get_num_threads())

        rng = np.random.default_rng(0)
        model = cnn.Sequential([Dense(64, "relu", input_dim=32), Dense(4, "softmax")], seed=0)
        model.compile("sgd", "sparse_categorical_crossentropy")
        model.fit(rng.standard_normal((256, 32)), rng.integers(0, 4, 256), batch_size=8, epochs=3, verbose=0,
                  callbacks=[Record()])
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert counts[0] == 1 and set(counts) == {1}  # capped from the first batch: the window before the fit
    assert cnn.get_num_threads() == 2  # the cap ends with the fit


def test_set_and_get(restore_threads):
    cnn.set_num_threads(1)
    assert cnn.get_num_threads() == 1
    cnn.set_num_threads(5)
    assert cnn.get_num_threads() == 5


def test_set_rejects_bad_counts():
    with pytest.raises(ValueError, match=r"set_num_threads: argument 'n' must lie in \[1, 1024\], got 0"):
        cnn.set_num_threads(0)
    with pytest.raises(TypeError):
        cnn.set_num_threads(2.5)


def test_threadpoolctl_sees_and_limits_our_openmp(restore_threads):
    cnn.set_num_threads(2)
    openmp = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "openmp"]
    assert any("gomp" in p["prefix"] for p in openmp), openmp
    with threadpoolctl.threadpool_limits(1):
        assert cnn.get_num_threads() == 1
    assert cnn.get_num_threads() == 2
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert cnn.get_num_threads() == 1


def gemm_once():
    a, b = np.ones((300, 700), np.float32), np.ones((700, 260), np.float32)
    _core.gemm(np.empty((300, 260), np.float32), a, b)  # big enough to open a parallel region


def in_new_thread(fn):
    """fn() run in a fresh Python thread (which has no OpenMP pool yet), and the OS threads its call started:
    libgomp keeps the team of the thread's first parallel region docked, count - 1 workers. (New thread ids,
    not a difference of counts: an earlier test's pool may still be exiting.)"""
    out = {}

    def work():
        before = set(os.listdir("/proc/self/task"))
        out["result"] = fn()
        out["workers"] = len(set(os.listdir("/proc/self/task")) - before)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out["result"], out["workers"]


def openmp_threads_seen_by_threadpoolctl():
    """num_threads of the libgomp cnn uses: the one named libgomp.so.1 (cnn's, or PyTorch's when torch loaded
    first: the loader then resolves cnn's libgomp.so.1 to it), not a wheel's renamed copy (scikit-learn's)."""
    return sorted({p["num_threads"] for p in threadpoolctl.threadpool_info()
                   if os.path.basename(p["filepath"]).startswith("libgomp.so")})


def kernel_threads():
    """A kernel's threads as this thread sees them: cnn's count, then threadpoolctl's view of libgomp."""
    gemm_once()
    return cnn.get_num_threads(), openmp_threads_seen_by_threadpoolctl()


needs_proc_and_openmp = pytest.mark.skipif(not (os.path.isdir("/proc/self/task") and _core.HAVE_OPENMP),
                                           reason="counts OpenMP workers in /proc/self/task")


@needs_proc_and_openmp
def test_set_num_threads_reaches_kernels_called_from_other_threads(restore_threads):
    # OpenMP's count is per thread: omp_set_num_threads in this thread left other threads at the default
    more = cnn.get_num_threads() + 1
    cnn.set_num_threads(more)
    assert in_new_thread(kernel_threads) == ((more, [more]), more - 1)
    cnn.set_num_threads(1)
    assert in_new_thread(kernel_threads) == ((1, [1]), 0)


@needs_proc_and_openmp
def test_threadpool_limits_in_another_thread_limits_its_kernels(restore_threads):
    cnn.set_num_threads(3)

    def limited():
        with threadpoolctl.threadpool_limits(1):
            inside = kernel_threads()
        return inside, cnn.get_num_threads()

    assert in_new_thread(limited) == (((1, [1]), 3), 0)
    assert cnn.get_num_threads() == 3


def run_at(threads, fn):
    saved = cnn.get_num_threads()
    try:
        cnn.set_num_threads(threads)
        return fn()
    finally:
        cnn.set_num_threads(saved)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,i,o", [(50, 784, 500), (50, 500, 10), (1, 300, 200), (2000, 30, 7)])
def test_dense_bitwise_identical_across_thread_counts(rng, dtype, n, i, o):
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, i), (i, o), (o,)))
    dy = rng.standard_normal((n, o)).astype(dtype)

    def step():
        y, dx = np.empty((n, o), dtype), np.empty((n, i), dtype)
        dw, db = np.ones((i, o), dtype), np.ones(o, dtype)
        _core.dense_forward(y, x, w, b)
        _core.dense_backward(dx, dw, db, dy, x, w)
        return y, dx, dw, db

    one = run_at(1, step)
    for threads in (2, 16):
        for got, ref in zip(run_at(threads, step), one):
            assert np.array_equal(got, ref)


def test_gemm_bitwise_identical_across_thread_counts(rng):
    a, b = rng.standard_normal((300, 700)).astype(np.float32), rng.standard_normal((700, 260)).astype(np.float32)

    def product():
        c = np.empty((300, 260), np.float32)
        _core.gemm(c, a, b)
        return c

    one = run_at(1, product)
    assert np.array_equal(run_at(2, product), one)
    assert np.array_equal(run_at(16, product), one)
