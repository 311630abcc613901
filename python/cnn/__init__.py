"""cnn: a small deep-learning engine with a C/OpenMP core.

`Sequential` and the layers follow Keras; `MLPClassifier`/`MLPRegressor` follow scikit-learn;
every kernel is checked against PyTorch. Submodules load on first use so `import cnn` stays fast.

Threads: kernels run on `get_num_threads()` OpenMP threads (OMP_NUM_THREADS, else one per CPU), and
`set_num_threads(n)` sets that for every thread of the process; threadpoolctl sees it and limits it in
the thread that calls threadpool_limits. A process forked after training keeps the count.

Busy machines: while other processes keep cores busy, a fit runs its kernels on no more threads than
there are free cores (cnn._contention measures that from /proc/stat every quarter second), so the
default thread count is never much slower than one thread; libgomp keeps its own wait policy (spin,
then sleep), which an idle machine needs for short parallel regions. CNN_ADAPT_THREADS=0 turns this off.
"""
import importlib

from ._core import get_num_threads, set_num_threads
from .models import Sequential

__version__ = "0.1.0"
__all__ = ["Sequential", "MLPClassifier", "MLPRegressor", "get_num_threads", "set_num_threads", "layers",
           "optimizers", "losses", "activations", "utils", "callbacks", "plot", "regularizers", "initializers",
           "datasets", "interop", "applications", "distributed", "__version__"]

_LAZY_MODULES = {"layers", "optimizers", "losses", "activations", "utils", "models", "callbacks", "plot",
                 "regularizers", "initializers", "datasets", "interop", "applications", "distributed"}
_LAZY_NAMES = {"MLPClassifier": "sklearn", "MLPRegressor": "sklearn"}  # scikit-learn loads only when asked for


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'cnn' has no attribute {name!r}")
