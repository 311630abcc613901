"""keras.callbacks: cnn.callbacks under Keras' import path."""
from ..callbacks import *  # noqa: F403
from ..callbacks import __all__  # noqa: F401
