"""keras.regularizers: cnn.regularizers under Keras' import path."""
from ..regularizers import *  # noqa: F403
from ..regularizers import __all__  # noqa: F401
