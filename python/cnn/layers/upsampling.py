"""UpSampling2D: repeat (nearest) or interpolate (bilinear) NCHW planes by integer factors, as Keras."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._validation import check_choice, check_image_shape, check_kernel_size, check_pair
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer

if TYPE_CHECKING:
    from .._types import IntPair, Shape


class UpSampling2D(Layer):
    """(N, C, H, W) → (N, C, H·size[0], W·size[1]). 'bilinear' uses half-pixel centres (Keras's resize;
    PyTorch's F.interpolate(mode='bilinear', align_corners=False))."""

    def __init__(self, size: IntPair = (2, 2), interpolation: str = "nearest", input_shape: Shape | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.size = check_pair(size, "size")
        self.interpolation = check_choice(interpolation, "interpolation", ("nearest", "bilinear"))
        self._buffers = {}

    def compute_output_shape(self, input_shape):
        c, h, w = check_image_shape(self, input_shape)
        out = (c, h * self.size[0], w * self.size[1])
        check_kernel_size(self, out[1] * out[2], f"the output plane {out[1:]}")
        return out

    def forward(self, x, training=False):
        self.check_input(x)
        x = np.ascontiguousarray(x)
        y = reuse(self._buffers, "y", (x.shape[0],) + self.output_shape, x.dtype)
        _core.upsample2d_forward(y, x, self.size, self.interpolation == "bilinear")
        self._cache = (x.shape, x.dtype)
        return y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        shape, dtype = self._cache
        dx = gradient(self, "dx", shape, dtype)
        _core.upsample2d_backward(dx, np.ascontiguousarray(dy), self.size, self.interpolation == "bilinear")
        return dx
