"""cnn: a small deep-learning engine with a C/OpenMP core.

`Sequential`, `Model` (the functional API) and the layers follow Keras; `MLPClassifier`/`MLPRegressor`
follow scikit-learn; every kernel is checked against PyTorch. Submodules load on first use so `import cnn` stays fast.

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
from .models import Model, Sequential

__version__ = "0.1.0"
__all__ = ["Model", "Sequential", "load_model", "MLPClassifier", "MLPRegressor", "get_num_threads", "set_num_threads",
           "layers", "optimizers", "losses", "metrics", "activations", "utils", "callbacks", "plot", "regularizers",
           "initializers", "datasets", "interop", "applications", "onnx", "keras", "random", "neural_network",
           "image", "distributed", "__version__"]

# keras, random and neural_network are the import paths of Keras and scikit-learn code (`import cnn as tf`,
# `from cnn import keras`, `from cnn import neural_network`): each re-exports cnn's own modules
_LAZY_MODULES = {"layers", "optimizers", "losses", "metrics", "activations", "utils", "models", "callbacks", "plot",
                 "regularizers", "initializers", "datasets", "interop", "applications", "onnx", "keras", "random",
                 "neural_network", "image", "distributed"}
_LAZY_NAMES = {"MLPClassifier": "sklearn", "MLPRegressor": "sklearn",  # scikit-learn loads only when asked for
               "load_model": "models"}


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'cnn' has no attribute {name!r}")
