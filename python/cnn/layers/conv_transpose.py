"""Conv2DTranspose: the transposed 2-D convolution over NCHW images, output sizes as Keras, kernel as PyTorch."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._validation import INT_MAX, check_choice, check_image_shape, check_number, check_pair
from ._buffers import reuse
from ._workspace import gradient, scratch
from .base import Layer

if TYPE_CHECKING:
    from .._types import Initializer, IntPair, Shape
    from ..activations import ActivationFunction
    from ..regularizers import L2


def deconv_geometry(size, kernel, stride, padding, output_padding):
    """(output size, cells cropped at the start) of one axis, as Keras's conv_utils.deconv_output_length, and
    where TensorFlow's 'SAME' transposed convolution places that output in the full (size - 1)·stride + kernel
    one: the crop is the top/left padding of the convolution it transposes, half the total, rounded down."""
    if output_padding is None:
        length = size * stride + max(kernel - stride, 0) if padding == "valid" else size * stride
    else:
        length = (size - 1) * stride + kernel - 2 * (kernel // 2 if padding == "same" else 0) + output_padding
    crop = max((size - 1) * stride + kernel - length, 0) // 2 if padding == "same" else 0
    return length, crop


class Conv2DTranspose(Layer):
    """y = activation(conv_transpose(x, kernel) + bias) for x (N, C, H, W). The kernel is laid out as PyTorch's
    ConvTranspose2d weight, (in_channels, filters, kh, kw) (Keras's is (kh, kw, filters, in_channels)).
    Output sizes follow Keras: 'valid' gives H·s + max(k - s, 0), 'same' H·s; with output_padding p,
    (H - 1)·s + k - 2·pad + p with pad = k // 2 for 'same' and 0 for 'valid'. 'same' crops the full output as
    TensorFlow does (the extra cell of an odd total at the end), which for k = 3, s = 2 is PyTorch's
    padding=1, output_padding=1 shifted by one row and column: compare with PyTorch through its padding=0
    output, cropped."""

    overwrites_grads = True

    def __init__(self, filters: int, kernel_size: IntPair, strides: IntPair = 1, padding: str = "valid",
                 output_padding: IntPair | None = None, activation: str | ActivationFunction | None = None,
                 use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
                 bias_initializer: Initializer = "zeros", kernel_regularizer: str | L2 | None = None,
                 input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.filters = check_number(filters, "filters", low=1, high=INT_MAX, integer=True)
        self.kernel_size = check_pair(kernel_size, "kernel_size")
        self.strides = check_pair(strides, "strides")
        self.padding = check_choice(padding.lower() if isinstance(padding, str) else padding, "padding",
                                    ("valid", "same"))
        self.output_padding = None if output_padding is None else check_pair(output_padding, "output_padding", low=0)
        if self.output_padding is not None and any(p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"output_padding {self.output_padding} must be smaller than strides {self.strides}")
        self._init_weights_config(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer)

    def compute_output_shape(self, input_shape):
        c, h, w = check_image_shape(self, input_shape)
        pads = self.output_padding or (None, None)
        (oh, pt), (ow, pl) = (deconv_geometry(size, k, s, self.padding, p)
                              for size, k, s, p in zip((h, w), self.kernel_size, self.strides, pads))
        self.crop = (pt, pl)
        return (self.filters, oh, ow)

    def weight_specs(self):
        specs = [("kernel", (self.input_shape[0], self.filters) + self.kernel_size, self.kernel_initializer)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), self.bias_initializer))
        return specs

    def penalty(self):
        return [(self.weights[0], self.grads[0], self.kernel_regularizer)] if self.kernel_regularizer else []

    def _scratch(self, n, dtype):
        """The kernel's workspace for one call (the backward rebuilds its columns from dy): the model's, shared."""
        size = _core.conv_transpose2d_scratch_size((n,) + self.input_shape, self.weights[0].shape)
        return scratch(self, size, dtype)

    def forward(self, x, training=False, logits=False):
        self.check_input(x)
        x = np.ascontiguousarray(x)
        z = reuse(self._buffers, "z", (x.shape[0],) + self.output_shape, x.dtype)
        _core.conv_transpose2d_forward(z, x, self.weights[0], self.weights[1] if self.use_bias else None,
                                       self._scratch(len(x), x.dtype), self.strides, self.crop)
        y = z if logits else self.activation.forward(z, out=reuse(self._buffers, "y", z.shape, z.dtype))
        self._cache = (x, z, y, logits)
        return y

    def backward(self, dy, need_dx=True):
        x, z, y, logits = self._cache
        dy = np.ascontiguousarray(dy)
        linear = logits or self.activation.code == _core.ACT_IDENTITY
        dz = dy if linear else self.activation.backward(dy, z, y, out=gradient(self, "dz", z.shape, z.dtype, over=dy))
        dx = gradient(self, "dx", x.shape, x.dtype) if need_dx else None
        _core.conv_transpose2d_backward(dx, self.grads[0], self.grads[1] if self.use_bias else None, dz, x,
                                        self.weights[0], self._scratch(len(x), x.dtype), self.strides, self.crop,
                                        not self.overwrites_grads)
        return dx
