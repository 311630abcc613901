"""keras.metrics: cnn.metrics under Keras' import path."""
from ..metrics import *  # noqa: F403
from ..metrics import __all__  # noqa: F401
