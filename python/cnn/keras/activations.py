"""keras.activations: cnn.activations under Keras' import path."""
from ..activations import *  # noqa: F403
from ..activations import __all__  # noqa: F401
