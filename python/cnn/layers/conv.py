"""Conv2D: a 2-D convolution over NCHW images, weights (filters, in/groups, kh, kw) as PyTorch."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from ..activations import DERIVATIVE_FROM_Y
from .._validation import INT_MAX, check_image_shape, check_kernel_size, check_number, check_pair
from ._buffers import reuse
from ._workspace import gradient, scratch
from .base import Layer

if TYPE_CHECKING:
    from .._types import Initializer, IntPair, Shape
    from ..activations import ActivationFunction
    from ..regularizers import L2


def conv_padding(padding, kernel_size, dilation, strides):
    """(top, bottom, left, right) for 'valid', 'same', an int or a (height, width) pair.

    'same' keeps the size at stride 1; an even window puts the extra cell at the bottom/right (Keras, PyTorch)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode != "same":
            raise ValueError(f"padding must be 'valid', 'same', an integer or a pair of integers, got {padding!r}")
        if strides != (1, 1):
            raise ValueError(f"padding='same' is not supported for strided convolutions (strides={strides}); "
                             "give the padding as integers instead")
        th, tw = (d * (k - 1) for d, k in zip(dilation, kernel_size))
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    ph, pw = check_pair(padding, "padding", low=0)
    return (ph, ph, pw, pw)


class Conv2D(Layer):
    """y = activation(conv(x, kernel) + bias) for x (N, C, H, W); kernel (filters, C/groups, kh, kw)."""

    overwrites_grads = True

    def __init__(self, filters: int, kernel_size: IntPair, strides: IntPair = 1,
                 padding: str | IntPair = "valid", dilation_rate: IntPair = 1,
                 groups: int = 1, activation: str | ActivationFunction | None = None, use_bias: bool = True,
                 kernel_initializer: Initializer = "glorot_uniform", bias_initializer: Initializer = "zeros",
                 kernel_regularizer: str | L2 | None = None, input_shape: Shape | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.filters = check_number(filters, "filters", low=1, high=INT_MAX, integer=True)
        self.kernel_size = check_pair(kernel_size, "kernel_size")
        self.strides = check_pair(strides, "strides")
        self.dilation_rate = check_pair(dilation_rate, "dilation_rate")
        self.groups = check_number(groups, "groups", low=1, high=INT_MAX, integer=True)
        if self.filters % self.groups:
            raise ValueError(f"filters ({self.filters}) must be divisible by groups ({self.groups})")
        if self.strides != (1, 1) and self.dilation_rate != (1, 1):
            raise ValueError(f"strides > 1 together with dilation_rate > 1 is not supported, got strides="
                             f"{self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = padding
        self.pads = conv_padding(padding, self.kernel_size, self.dilation_rate, self.strides)
        self._init_weights_config(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer)

    def compute_output_shape(self, input_shape):
        c, h, w = check_image_shape(self, input_shape)
        if c % self.groups:
            raise ValueError(f"layer {self.name!r}: input channels ({c}) must be divisible by groups ({self.groups})")
        out = []
        for size, k, s, d, lo, hi in zip((h, w), self.kernel_size, self.strides, self.dilation_rate,
                                          self.pads[0::2], self.pads[1::2]):
            span = check_kernel_size(self, d * (k - 1) + 1, "the window, dilation_rate * (kernel_size - 1) + 1,")
            check_kernel_size(self, size + lo + hi, f"the padded input size (padding {self.pads})")
            if size + lo + hi < span:
                raise ValueError(f"layer {self.name!r}: the {span}-cell window does not fit the input "
                                 f"(None, {c}, {h}, {w}) with padding {self.pads}")
            out.append((size + lo + hi - span) // s + 1)
        return (self.filters, out[0], out[1])

    def weight_specs(self):
        specs = [("kernel", (self.filters, self.input_shape[0] // self.groups) + self.kernel_size,
                  self.kernel_initializer)]
        if self.use_bias:
            specs.append(("bias", (self.filters,), self.bias_initializer))
        return specs

    def penalty(self):
        return [(self.weights[0], self.grads[0], self.kernel_regularizer)] if self.kernel_regularizer else []

    def _geometry(self):
        return self.strides, self.pads, self.dilation_rate, self.groups

    def _scratch(self, n, dtype):
        """The kernel's workspace for a batch of n (the columns, the weight-gradient chunk sums), for one call:
        the model's, shared by its layers (nothing in it outlives a call); None where the kernel needs none."""
        size = _core.conv2d_scratch_size((n,) + self.input_shape, self.weights[0].shape, *self._geometry())
        return scratch(self, size, dtype) if size else None

    def forward(self, x, training=False, logits=False, params=None):
        """logits=True stops before the activation (a fused loss takes the pre-activation). params = (kernel,
        bias) replaces the weights for this call (inference with a BatchNormalization folded in)."""
        self.check_input(x)
        x = np.ascontiguousarray(x)
        n = x.shape[0]
        z = reuse(self._buffers, "z", (n,) + self.output_shape, x.dtype)
        kernel, bias = params or (self.weights[0], self.weights[1] if self.use_bias else None)
        _core.conv2d_forward(z, x, kernel, bias, self._scratch(n, x.dtype), *self._geometry())
        # an activation whose derivative is read off y alone writes y over z: one batch-sized buffer fewer
        out = z if self.activation.code in DERIVATIVE_FROM_Y else reuse(self._buffers, "y", z.shape, z.dtype)
        y = z if logits else self.activation.forward(z, out=out)
        self._cache = (x, z, y, logits)
        return y

    def backward(self, dy, need_dx=True):
        x, z, y, logits = self._cache
        dy = np.ascontiguousarray(dy)
        # the activation's gradient may go over dy (its kernel allows dx = dy) when the model lends dy
        linear = logits or self.activation.code == _core.ACT_IDENTITY
        dz = dy if linear else self.activation.backward(dy, z, y, out=gradient(self, "dz", z.shape, z.dtype, over=dy))
        dx = gradient(self, "dx", x.shape, x.dtype) if need_dx and self.wants_input_gradient() else None
        _core.conv2d_backward(dx, self.grads[0], self.grads[1] if self.use_bias else None, dz, x, self.weights[0],
                              self._scratch(len(x), x.dtype), *self._geometry(), not self.overwrites_grads)
        return dx
