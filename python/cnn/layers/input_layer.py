"""Input(shape): declares a Sequential's input shape (batch excluded), as keras.Input does."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._validation import check_shape
from .base import Layer

if TYPE_CHECKING:
    from .._types import Shape


class InputLayer(Layer):
    """Holds the input shape; a Sequential keeps it apart, so model.layers omits it as in Keras."""

    def __init__(self, shape: Shape, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=check_shape(shape, "shape (batch excluded, such as (784,))"))
        self.shape = self.input_shape


def Input(shape: Shape, name: str | None = None) -> InputLayer:
    """The first element of `Sequential([Input((784,)), Dense(10)])`; shape excludes the batch."""
    return InputLayer(shape, name=name)
