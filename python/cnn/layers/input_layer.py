"""Input(shape): a model's input (batch excluded), as keras.Input: a symbolic tensor to call layers on for
cnn.Model, or the first element of a Sequential."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._validation import check_shape
from .base import Layer
from .node import KerasTensor, Node

if TYPE_CHECKING:
    from .._types import Shape


class InputLayer(Layer):
    """Holds the input shape and the one node its tensor comes from. A Sequential keeps it apart, so its
    model.layers omits it; a cnn.Model lists it first, as Keras does."""

    def __init__(self, shape: Shape, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=check_shape(shape, "shape (batch excluded, such as (784,))"))
        self.shape = self.output_shape = self.input_shape
        self.built = True
        Node(self, [])

    @property
    def output(self) -> KerasTensor:
        return self._inbound_nodes[0].output


def Input(shape: Shape, name: str | None = None) -> KerasTensor:
    """A model input of this shape (batch excluded): call layers on it for cnn.Model(inputs, outputs), or
    start a `Sequential([Input((784,)), Dense(10)])` with it."""
    return InputLayer(shape, name=name).output
