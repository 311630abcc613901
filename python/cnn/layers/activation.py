"""ReLU and LeakyReLU as layers, with Keras's arguments, on one C kernel (Keras's general rectifier)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._validation import check_number
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer

if TYPE_CHECKING:
    from .._types import Shape


class ReLU(Layer):
    """f(x) = min(x, max_value) for x >= threshold (and x > 0), negative_slope·(x - threshold) below threshold,
    as keras.layers.ReLU. max_value None means no cap."""

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.max_value = None if max_value is None else float(check_number(max_value, "max_value", low=0))
        self.negative_slope = float(check_number(negative_slope, "negative_slope", low=0))
        self.threshold = float(check_number(threshold, "threshold"))
        self._buffers = {}

    def _args(self):
        return (math.inf if self.max_value is None else self.max_value), self.negative_slope, self.threshold

    def forward(self, x, training=False):
        self.check_input(x)
        x = np.ascontiguousarray(x)
        y = reuse(self._buffers, "y", x.shape, x.dtype)
        _core.relu_forward(y, x, *self._args())
        self._x = x
        return y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        dy = np.ascontiguousarray(dy)
        dx = gradient(self, "dx", self._x.shape, self._x.dtype, over=dy)  # relu_backward allows dx = dy
        _core.relu_backward(dx, dy, self._x, *self._args())
        return dx


class LeakyReLU(ReLU):
    """f(x) = x for x > 0, negative_slope·x otherwise (keras.layers.LeakyReLU: default slope 0.3; `alpha` is
    Keras 2's name for it)."""

    def __init__(self, negative_slope: float = 0.3, alpha: float | None = None, input_shape: Shape | None = None,
                 name: str | None = None) -> None:
        super().__init__(negative_slope=negative_slope if alpha is None else alpha, input_shape=input_shape,
                         name=name)
