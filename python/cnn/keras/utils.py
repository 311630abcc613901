"""keras.utils: cnn.utils under Keras' import path."""
from ..utils import *  # noqa: F403
from ..utils import __all__  # noqa: F401
