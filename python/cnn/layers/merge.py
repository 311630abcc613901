"""Merge layers for cnn.Model: Add, Multiply and Concatenate take a list of tensors, as in Keras.

`Add()([a, b, c])` is a + b + c, `Multiply()` the element-wise product, both over inputs of one shape.
`Concatenate(axis=-1)` joins its inputs along `axis`, counted as Keras counts it, over the whole tensor
with the batch as axis 0: the default -1 is the last axis, the width of an NCHW image, so join image
channels with `Concatenate(axis=1)`. The batch axis cannot be joined. Each forward and backward writes
into buffers the layer keeps and its next call overwrites."""
from __future__ import annotations

import math

import numpy as np

from .. import _core
from .._validation import check_number
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer


class _Merge(Layer):
    """Takes a list of at least two tensors (see Layer.__call__)."""

    multi_input = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name=name)
        self._buffers = {}

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) takes a list of at least 2 input shapes, "
                             f"got {input_shape!r}")
        return super().build([tuple(s) for s in input_shape])

    def check_input(self, xs):
        if len(xs) != len(self.input_shape) or any(x.shape[1:] != s for x, s in zip(xs, self.input_shape)):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects inputs of shapes "
                             f"{[(None,) + s for s in self.input_shape]}, got {[x.shape for x in xs]}")
        return [np.ascontiguousarray(x) for x in xs]


class _ElementWise(_Merge):
    def compute_output_shape(self, input_shape):
        if any(s != input_shape[0] for s in input_shape):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) needs inputs of one shape, got "
                             f"{[(None,) + tuple(s) for s in input_shape]}")
        return input_shape[0]


class Add(_ElementWise):
    """y = x0 + x1 + ..., summed left to right; each input's gradient is dy itself."""

    def forward(self, xs, training=False, relu=False):
        """relu=True returns relu of the sum, a plain ReLU layer after this one taken over (layers/fusion.py); backward
        then takes the gradient of that output."""
        xs = self.check_input(xs)
        y = reuse(self._buffers, "y", xs[0].shape, xs[0].dtype)
        _core.add_forward(y, xs[0], xs[1], relu and len(xs) == 2)
        for k, x in enumerate(xs[2:], 3):
            _core.add_forward(y, y, x, relu and k == len(xs))
        self._relu_y = y if relu else None
        return y

    def backward(self, dy, need_dx=True):
        """Each input's gradient is dy itself, or dy through the ReLU taken over (one array for every input)."""
        if not need_dx:
            return None
        if self._relu_y is not None:  # relu_backward of the ReLU's output: where it is positive its input was
            y, dy = self._relu_y, np.ascontiguousarray(dy)
            dx = gradient(self, "dx", y.shape, y.dtype, over=dy)
            _core.relu_backward(dx, dy, y, np.inf, 0.0, 0.0)
            dy = dx
        return [dy] * len(self.input_shape)


class Multiply(_ElementWise):
    """y = x0·x1·..., multiplied left to right; the partial products are kept for the backward."""

    def forward(self, xs, training=False):
        xs = self.check_input(xs)
        products = [xs[0]]  # products[j] = x0·...·xj
        for j, x in enumerate(xs[1:], 1):
            p = reuse(self._buffers, f"p{j}", x.shape, x.dtype)
            _core.multiply_forward(p, products[-1], x)
            products.append(p)
        self._cache = (xs, products)
        return products[-1]

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        xs, products = self._cache
        d, dxs = np.ascontiguousarray(dy), [None] * len(xs)
        for j in range(len(xs) - 1, 0, -1):  # through products[j] = products[j - 1]·xj
            dp = gradient(self, f"dp{j}", d.shape, d.dtype)
            dxs[j] = gradient(self, f"dx{j}", d.shape, d.dtype)
            _core.multiply_backward(dp, dxs[j], d, products[j - 1], xs[j])
            d = dp
        dxs[0] = d
        return dxs


class Concatenate(_Merge):
    """Joins the inputs along `axis` (Keras's count: 0 is the batch, -1 the last axis; 1 the channels of NCHW
    images); all other dimensions must agree."""

    def __init__(self, axis: int = -1, name: str | None = None) -> None:
        super().__init__(name=name)
        self.axis = check_number(axis, "axis", integer=True)

    def compute_output_shape(self, input_shape):
        rank = len(input_shape[0]) + 1
        if any(len(s) + 1 != rank for s in input_shape) or not (-rank < self.axis < rank and self.axis != 0):
            raise ValueError(f"layer {self.name!r} (Concatenate) with axis={self.axis} needs inputs of one rank with "
                             f"that axis in it (not the batch, axis 0), got shapes "
                             f"{[(None,) + tuple(s) for s in input_shape]}")
        a = (self.axis % rank) - 1  # in the shape without the batch
        if any(s[:a] + s[a + 1:] != input_shape[0][:a] + input_shape[0][a + 1:] for s in input_shape):
            raise ValueError(f"layer {self.name!r} (Concatenate) with axis={self.axis} needs inputs that agree "
                             f"on every other axis, got shapes {[(None,) + tuple(s) for s in input_shape]}")
        return input_shape[0][:a] + (sum(s[a] for s in input_shape),) + input_shape[0][a + 1:]

    def _rows(self, n):
        """M: the rows each tensor is seen as (the batch and the dimensions before the axis)."""
        return n * math.prod(self.output_shape[:(self.axis % (len(self.output_shape) + 1)) - 1])

    def forward(self, xs, training=False):
        xs = self.check_input(xs)
        y = reuse(self._buffers, "y", (len(xs[0]),) + self.output_shape, xs[0].dtype)
        m, offset = self._rows(len(y)), 0
        for x in xs:
            part = x.reshape(m, -1)
            _core.concatenate_forward(y.reshape(m, -1), part, offset)
            offset += part.shape[1]
        return y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        dy = np.ascontiguousarray(dy)
        m, offset, dxs = self._rows(len(dy)), 0, []
        for i, shape in enumerate(self.input_shape):
            dx = gradient(self, f"dx{i}", (len(dy),) + shape, dy.dtype)
            _core.concatenate_backward(dx.reshape(m, -1), dy.reshape(m, -1), offset)
            offset += dx.size // m
            dxs.append(dx)
        return dxs
