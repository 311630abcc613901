"""keras.layers: cnn.layers under Keras' import path."""
from ..layers import *  # noqa: F403
from ..layers import __all__  # noqa: F401
