"""Dense and Activation layers."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core, activations
from .._validation import INT_MAX, check_number
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer

if TYPE_CHECKING:
    from .._types import Initializer, Shape
    from ..activations import ActivationFunction
    from ..regularizers import L2


class Dense(Layer):
    """y = activation(x·kernel + bias), kernel (in, units) as in Keras; inputs of rank > 2 contract the last axis."""

    overwrites_grads = True

    def __init__(self, units: int, activation: str | ActivationFunction | None = None, use_bias: bool = True,
                 input_dim: int | None = None, input_shape: Shape | None = None,
                 kernel_initializer: Initializer = "glorot_uniform", bias_initializer: Initializer = "zeros",
                 kernel_regularizer: str | L2 | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape, input_dim=input_dim)
        self.units = check_number(units, "units", low=1, high=INT_MAX, integer=True)
        self._init_weights_config(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def weight_specs(self):
        specs = [("kernel", (self.input_shape[-1], self.units), self.kernel_initializer)]
        if self.use_bias:
            specs.append(("bias", (self.units,), self.bias_initializer))
        return specs

    def penalty(self):
        return [(self.weights[0], self.grads[0], self.kernel_regularizer)] if self.kernel_regularizer else []

    def forward(self, x, training=False, logits=False, params=None):
        """logits=True stops before the activation (a fused loss takes the pre-activation). The result lives
        in a buffer that the layer's next call overwrites (copy it to keep it). params = (kernel, bias) replaces
        the weights for this call (inference with a BatchNormalization folded in)."""
        self.check_input(x)
        rows = x.reshape(-1, self.input_shape[-1])
        z = reuse(self._buffers, "z", (rows.shape[0], self.units), x.dtype)
        kernel, bias = params or (self.weights[0], self.weights[1] if self.use_bias else None)
        _core.dense_forward(z, rows, kernel, bias)
        # an activation whose derivative is read off y alone writes y over z: one buffer fewer
        in_place = self.activation.code in activations.DERIVATIVE_FROM_Y
        out = z if in_place else reuse(self._buffers, "y", z.shape, z.dtype)
        y = z if logits else self.activation.forward(z, out=out)
        self._cache = (x.shape, rows, z, y, logits)
        return y.reshape(x.shape[:-1] + (self.units,))

    def backward(self, dy, need_dx=True):
        shape, rows, z, y, logits = self._cache
        dy = np.ascontiguousarray(dy.reshape(z.shape))
        linear = logits or self.activation.code == _core.ACT_IDENTITY  # no buffer for what would be dy itself
        dz = dy if linear else self.activation.backward(dy, z, y, out=gradient(self, "dz", z.shape, z.dtype, over=dy))
        dx = gradient(self, "dx", rows.shape, rows.dtype) if need_dx else None
        _core.dense_backward(dx, self.grads[0], self.grads[1] if self.use_bias else None, dz, rows, self.weights[0],
                             not self.overwrites_grads)
        return dx.reshape(shape) if need_dx else None


class Activation(Layer):
    """Applies a named activation ('relu', 'softmax', 'scaled_tanh', ...) or an ActivationFunction.

    forward writes into a buffer the layer keeps and its next call overwrites; backward into the model's
    gradient workspace, over dy when the model lends it."""

    def __init__(self, activation: str | ActivationFunction, name: str | None = None,
                 input_shape: Shape | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.activation = activations.get(activation)
        self._buffers = {}

    def forward(self, x, training=False, logits=False):
        self.check_input(x)
        x = np.ascontiguousarray(x)
        y = x if logits else self.activation.forward(x, out=reuse(self._buffers, "y", x.shape, x.dtype))
        self._cache = (x, y, logits)
        return y

    def backward(self, dy, need_dx=True):
        x, y, logits = self._cache
        if not need_dx:
            return None
        if logits or self.activation.code == _core.ACT_IDENTITY:
            return dy
        dy = np.ascontiguousarray(dy)
        return self.activation.backward(dy, x, y, out=gradient(self, "dx", x.shape, x.dtype, over=dy))
