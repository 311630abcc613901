"""cnn: a small deep-learning engine with a C/OpenMP core.

`Sequential` and the layers follow Keras; `MLPClassifier`/`MLPRegressor` follow scikit-learn;
every kernel is checked against PyTorch. Submodules load on first use so `import cnn` stays fast.

Threads: kernels run on `get_num_threads()` OpenMP threads (OMP_NUM_THREADS, else one per CPU), and
`set_num_threads(n)` sets that for every thread of the process; threadpoolctl sees it and limits it in
the thread that calls threadpool_limits. A process forked after training keeps the count.

Waiting: an OpenMP thread with no work spins for a while, then sleeps. libgomp's default spin is
300,000 rounds (~4 ms on the 2-vCPU VM of benchmarks/contention.py). On a machine whose other processes
keep the cores busy, a spinning thread holds a core that its own team needs, and a fit at the default
thread count ran 1.4-23x slower than at one thread there; passive (no spin: sleep at once) kept it within
1.2x, where spins of 1,000 and 300 rounds (~12 and ~4 µs) still cost up to 1.45x and 1.24x. Passive's
price is a wake-up (tens of µs on that VM) at each parallel region on an otherwise idle machine: there
the MLP (B1) keeps its 2-thread speed-up, but LeNet-5 (B2), with many short regions, loses it (1.29x
its 1-thread time, against 0.63x spinning). The worst case passive is 1.3x one thread; spinning, 23x. So,
unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, cnn loads libgomp with OMP_WAIT_POLICY=passive; on a
machine that runs nothing else, GOMP_SPINCOUNT=300000 (libgomp's default) spins again. The
variable is set only while libgomp loads (it reads it once, then), so no other library or child
process sees it; libgomp already loaded by another library (PyTorch ships one under the same name:
`import torch` first) keeps that library's policy.
"""
import importlib
import os


def _load_core():
    """Import _core, and with it libgomp, passive unless the user chose a wait policy (see the docstring)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        importlib.import_module("._core", __name__)
        return
    os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        importlib.import_module("._core", __name__)
    finally:
        del os.environ["OMP_WAIT_POLICY"]


_load_core()
from ._core import get_num_threads, set_num_threads  # noqa: E402
from .models import Sequential  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Sequential", "MLPClassifier", "MLPRegressor", "get_num_threads", "set_num_threads", "layers",
           "optimizers", "losses", "activations", "utils", "callbacks", "plot", "regularizers", "initializers",
           "datasets", "interop", "applications", "__version__"]

_LAZY_MODULES = {"layers", "optimizers", "losses", "activations", "utils", "models", "callbacks", "plot",
                 "regularizers", "initializers", "datasets", "interop", "applications"}
_LAZY_NAMES = {"MLPClassifier": "sklearn", "MLPRegressor": "sklearn"}  # scikit-learn loads only when asked for


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'cnn' has no attribute {name!r}")
