"""keras.backend: clear_session (cnn.utils.clear_session) under Keras' import path."""
from ..utils import clear_session

__all__ = ["clear_session"]
