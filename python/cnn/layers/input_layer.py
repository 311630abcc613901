"""Input(shape): declares a Sequential's input shape (batch excluded), as keras.Input does."""
from .base import Layer


class InputLayer(Layer):
    """Holds the input shape; a Sequential keeps it apart, so model.layers omits it as in Keras."""

    def __init__(self, shape, name=None):
        if shape is None or len(tuple(shape)) == 0:
            raise ValueError(f"Input needs a shape such as (784,) (batch excluded), got {shape!r}")
        if any(int(d) < 1 for d in shape):
            raise ValueError(f"Input shape dimensions must be positive, got {tuple(shape)}")
        super().__init__(name=name, input_shape=shape)
        self.shape = self.input_shape


def Input(shape, name=None):
    """The first element of `Sequential([Input((784,)), Dense(10)])`; shape excludes the batch."""
    return InputLayer(shape, name=name)
