"""Keras' namespace over cnn: code written for Keras 2 or 3 runs with only its import lines changed.

    import tensorflow as tf                             ->  import cnn as tf
    from tensorflow import keras  (or: import keras)    ->  from cnn import keras
    from tensorflow.keras.models import Sequential      ->  from cnn.keras.models import Sequential
    from tensorflow.keras import backend as K           ->  from cnn.keras import backend as K

Every submodule here re-exports cnn's own (cnn.layers, cnn.losses, ...): nothing is implemented twice.
`keras.__version__` is cnn's version. Submodules load on first use, as cnn's do."""
import importlib

from .. import __version__

__all__ = ["models", "layers", "callbacks", "optimizers", "losses", "metrics", "utils", "backend", "datasets",
           "Sequential", "Model", "Input", "load_model", "__version__"]

_SUBMODULES = {"models", "layers", "callbacks", "optimizers", "losses", "metrics", "utils", "backend", "datasets",
               "activations", "initializers", "regularizers"}
_NAMES = {"Sequential": "models", "Model": "models", "load_model": "models", "Input": "layers"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'cnn.keras' has no attribute {name!r}")
