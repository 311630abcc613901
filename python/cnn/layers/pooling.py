"""Max and average pooling over NCHW images; one implementation behind the Keras names."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._validation import check_image_shape, check_kernel_size, check_pair
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer

if TYPE_CHECKING:
    from .._types import IntPair, Shape


class _Pooling2D(Layer):
    def __init__(self, pool_size: IntPair = (2, 2), strides: IntPair | None = None, padding: str | IntPair = "valid",
                 input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = check_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else check_pair(strides, "strides")
        if isinstance(padding, str):
            if padding.lower() not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid', 'same', an integer or a pair of integers, got {padding!r}")
            self.padding = padding.lower()
        else:
            self.padding = check_pair(padding, "padding", low=0)
            for p, k in zip(self.padding, self.pool_size):
                if p > k // 2:
                    raise ValueError(f"padding {self.padding} must be at most half of pool_size {self.pool_size}")
        self._buffers = {}

    def compute_output_shape(self, input_shape):
        c, h, w = check_image_shape(self, input_shape)
        if self.padding == "valid":
            self.pads = (0, 0, 0, 0)
        elif self.padding == "same":
            # Keras: ceil(size / stride) outputs, the odd padding cell at the bottom/right
            pads = []
            for size, k, s in zip((h, w), self.pool_size, self.strides):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            self.pads = tuple(pads)
        else:
            ph, pw = self.padding
            self.pads = (ph, ph, pw, pw)
        out = []
        for size, k, s, lo, hi in zip((h, w), self.pool_size, self.strides, self.pads[0::2], self.pads[1::2]):
            check_kernel_size(self, size + lo + hi, f"the padded input size (padding {self.pads})")
            if size + lo + hi < k:
                raise ValueError(f"layer {self.name!r}: pool_size {self.pool_size} does not fit the input "
                                 f"(None, {c}, {h}, {w}) with padding {self.pads}")
            out.append((size + lo + hi - k) // s + 1)
        return (c, out[0], out[1])

    def _geometry(self):
        return self.pool_size, self.strides, self.pads


class MaxPooling2D(_Pooling2D):
    """The maximum of each window; the first maximum in row-major order takes the gradient (PyTorch CPU)."""

    def tiles(self):
        """Whether the windows are 2x2 at stride 2 without padding: maxpool2x2 keeps a byte per window (not an
        int64 index) and may take over the ReLU before it (layers/fusion.py)."""
        return self.pool_size == (2, 2) and self.strides == (2, 2) and self.pads == (0, 0, 0, 0)

    def forward(self, x, training=False, relu=False):
        """relu=True pools relu(x) (tiles() only): backward then gives the gradient through the ReLU too."""
        self.check_input(x)
        x = np.ascontiguousarray(x)
        shape = (x.shape[0],) + self.output_shape
        y = reuse(self._buffers, "y", shape, x.dtype)
        if self.tiles():
            code = reuse(self._buffers, "code", shape, np.uint8)
            _core.maxpool2x2_forward(y, code, x, relu)
            self._cache = (x.shape, x.dtype, code)
            return y
        argmax = reuse(self._buffers, "argmax", shape, np.int64)
        _core.maxpool2d_forward(y, argmax, x, *self._geometry())
        self._cache = (x.shape, x.dtype, argmax)
        return y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        shape, dtype, index = self._cache
        dx = gradient(self, "dx", shape, dtype)
        if index.dtype == np.uint8:
            _core.maxpool2x2_backward(dx, np.ascontiguousarray(dy), index)
        else:
            _core.maxpool2d_backward(dx, np.ascontiguousarray(dy), index, *self._geometry())
        return dx


class AveragePooling2D(_Pooling2D):
    """The mean of each window. 'same' divides by the real cells only (Keras); integer padding counts
    the zero padding, as PyTorch's AvgPool2d default."""

    def _include_pad(self):
        return self.padding != "same"

    def forward(self, x, training=False):
        self.check_input(x)
        x = np.ascontiguousarray(x)
        y = reuse(self._buffers, "y", (x.shape[0],) + self.output_shape, x.dtype)
        _core.avgpool2d_forward(y, x, *self._geometry(), self._include_pad())
        self._cache = (x.shape, x.dtype)
        return y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        shape, dtype = self._cache
        dx = gradient(self, "dx", shape, dtype)
        _core.avgpool2d_backward(dx, np.ascontiguousarray(dy), *self._geometry(), self._include_pad())
        return dx


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class _GlobalPooling2D(Layer):
    """(N, C, H, W) → (N, C): the pooling kernels with one window over the whole plane."""

    def __init__(self, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self._buffers = {}

    def compute_output_shape(self, input_shape):
        return check_image_shape(self, input_shape)[:1]

    def _geometry(self):
        plane = tuple(self.input_shape[1:])
        return plane, plane, (0, 0, 0, 0)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel's plane (Keras's GlobalAveragePooling2D with channels first, keepdims=False)."""

    def forward(self, x, training=False):
        self.check_input(x)
        x = np.ascontiguousarray(x)
        y = reuse(self._buffers, "y", x.shape[:2] + (1, 1), x.dtype)
        _core.avgpool2d_forward(y, x, *self._geometry(), True)
        self._cache = (x.shape, x.dtype)
        return y.reshape(x.shape[:2])

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        shape, dtype = self._cache
        dx = gradient(self, "dx", shape, dtype)
        _core.avgpool2d_backward(dx, np.ascontiguousarray(dy).reshape(shape[:2] + (1, 1)), *self._geometry(), True)
        return dx


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The maximum of each channel's plane; the first maximum in row-major order takes the gradient."""

    def forward(self, x, training=False):
        self.check_input(x)
        x = np.ascontiguousarray(x)
        y = reuse(self._buffers, "y", x.shape[:2] + (1, 1), x.dtype)
        argmax = reuse(self._buffers, "argmax", y.shape, np.int64)
        _core.maxpool2d_forward(y, argmax, x, *self._geometry())
        self._cache = (x.shape, x.dtype, argmax)
        return y.reshape(x.shape[:2])

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        shape, dtype, argmax = self._cache
        dx = gradient(self, "dx", shape, dtype)
        _core.maxpool2d_backward(dx, np.ascontiguousarray(dy).reshape(argmax.shape), argmax, *self._geometry())
        return dx


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
