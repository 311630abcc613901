"""keras.initializers: cnn.initializers under Keras' import path."""
from ..initializers import *  # noqa: F403
from ..initializers import __all__  # noqa: F401
