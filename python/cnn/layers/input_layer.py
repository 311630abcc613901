"""Input(shape): declares a Sequential's input shape (batch excluded), as keras.Input does."""
from .._validation import check_shape
from .base import Layer


class InputLayer(Layer):
    """Holds the input shape; a Sequential keeps it apart, so model.layers omits it as in Keras."""

    def __init__(self, shape, name=None):
        super().__init__(name=name, input_shape=check_shape(shape, "shape (batch excluded, such as (784,))"))
        self.shape = self.input_shape


def Input(shape, name=None):
    """The first element of `Sequential([Input((784,)), Dense(10)])`; shape excludes the batch."""
    return InputLayer(shape, name=name)
