"""keras.optimizers: cnn.optimizers under Keras' import path."""
from ..optimizers import *  # noqa: F403
from ..optimizers import __all__  # noqa: F401
