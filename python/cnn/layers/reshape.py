"""Flatten, Reshape and ZeroPadding2D: layers that move values without arithmetic."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._validation import check_image_shape, check_pair
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer

if TYPE_CHECKING:
    from .._types import IntPair, Shape


class Flatten(Layer):
    """(N, C, H, W) → (N, C·H·W) in C, H, W order, as torch.nn.Flatten on NCHW."""

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)  # a Python int: np.prod would wrap at 2**63

    def forward(self, x, training=False):
        self.check_input(x)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        return dy.reshape(self._shape) if need_dx else None


class Reshape(Layer):
    """(N, *input_shape) → (N, *target_shape) in C order, as keras.layers.Reshape; one -1 takes what is left."""

    def __init__(self, target_shape: Shape, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        target = tuple(target_shape)
        if (not target or target.count(-1) > 1
                or any(isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1) for d in target)):
            raise ValueError(f"target_shape must be positive integers with at most one -1, got {target_shape!r}")
        self.target_shape = target

    def compute_output_shape(self, input_shape):
        size, known = math.prod(input_shape), -math.prod(self.target_shape) if -1 in self.target_shape else None
        out = tuple(size // known if d == -1 else d for d in self.target_shape) if known else self.target_shape
        if math.prod(out) != size or (known and size % known):
            raise ValueError(f"layer {self.name!r}: cannot reshape (None, {', '.join(map(str, input_shape))}) "
                             f"({size} values) to target_shape {self.target_shape}")
        return out

    def forward(self, x, training=False):
        self.check_input(x)
        self._shape = x.shape
        return x.reshape((x.shape[0],) + self.output_shape)

    def backward(self, dy, need_dx=True):
        return dy.reshape(self._shape) if need_dx else None


class ZeroPadding2D(Layer):
    """Zeros around each image: an int, (height, width) pairs, or ((top, bottom), (left, right)) as Keras."""

    def __init__(self, padding: IntPair | tuple[tuple[int, int], tuple[int, int]] = (1, 1),
                 input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        if (isinstance(padding, (tuple, list)) and len(padding) == 2
                and all(isinstance(p, (tuple, list)) for p in padding)):
            (top, bottom), (left, right) = (check_pair(p, "padding", low=0) for p in padding)
        else:
            (top, left) = check_pair(padding, "padding", low=0)
            bottom, right = top, left
        self.pads = (top, bottom, left, right)
        self._buffers = {}

    def compute_output_shape(self, input_shape):
        c, h, w = check_image_shape(self, input_shape)
        top, bottom, left, right = self.pads
        return (c, h + top + bottom, w + left + right)

    def forward(self, x, training=False):
        self.check_input(x)
        # the border of a kept buffer stays zero: only the interior is ever written
        y = reuse(self._buffers, "y", (x.shape[0],) + self.output_shape, x.dtype, zero=True)
        top, _, left, _ = self.pads
        y[:, :, top:top + x.shape[2], left:left + x.shape[3]] = x
        self._shape = x.shape
        return y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        top, _, left, _ = self.pads
        dx = gradient(self, "dx", self._shape, dy.dtype)
        np.copyto(dx, dy[:, :, top:top + self._shape[2], left:left + self._shape[3]])
        return dx
