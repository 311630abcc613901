"""BatchNormalization over axis 1 (NCHW channels, or a Dense output's features), with Keras's defaults and
semantics, and the folding of an inference-mode BatchNormalization into the Conv2D or Dense before it."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core, initializers
from .._validation import check_number
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer
from .conv import Conv2D
from .core import Dense

if TYPE_CHECKING:
    from .._types import Initializer, Shape


class BatchNormalization(Layer):
    """y = gamma·(x - mean)/sqrt(var + epsilon) + beta per channel of axis 1.

    Training (fit, train_on_batch) uses the batch's mean and biased variance and moves the moving statistics as
    Keras does: moving = moving·momentum + batch·(1 - momentum), the batch variance biased (ops.moments), so
    PyTorch's BatchNorm2d(momentum=1 - momentum, eps=epsilon) matches it in the mean and differs in the variance
    by its unbiased N·H·W/(N·H·W - 1) factor. Inference (predict, evaluate) uses the moving statistics.
    Weights [gamma, beta, moving_mean, moving_variance] in Keras's order (gamma without scale, beta without
    center); the moving statistics are non-trainable: no optimizer, weight decay or gradient touches them.
    Deviation from Keras: axis defaults to 1, the channel axis of cnn's NCHW images (Keras's -1 is channels-last);
    axis=-1 is accepted where it is the same axis (a Dense output)."""

    overwrites_grads = True
    non_trainable = frozenset({"moving_mean", "moving_variance"})

    def __init__(self, axis: int = 1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Initializer = "zeros", gamma_initializer: Initializer = "ones",
                 moving_mean_initializer: Initializer = "zeros", moving_variance_initializer: Initializer = "ones",
                 input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        if axis not in (1, -1):
            raise ValueError(f"axis must be 1 (the channel axis of NCHW, or a Dense output's features), got {axis!r}")
        self.axis = axis
        self.momentum = float(check_number(momentum, "momentum", low=0, high=1))
        self.epsilon = float(check_number(epsilon, "epsilon", low=0, low_open=True))
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self._buffers = {}

    def compute_output_shape(self, input_shape):
        if self.axis == -1 and len(input_shape) != 1:
            raise ValueError(f"layer {self.name!r}: axis=-1 is the channel axis only for (None, features) inputs; "
                             f"cnn's images are NCHW, use axis=1 for input (None, {', '.join(map(str, input_shape))})")
        return input_shape

    def weight_specs(self):
        shape = (self.input_shape[0],)
        specs = [("gamma", shape, self.gamma_initializer)] if self.scale else []
        if self.center:
            specs.append(("beta", shape, self.beta_initializer))
        return specs + [("moving_mean", shape, self.moving_mean_initializer),
                        ("moving_variance", shape, self.moving_variance_initializer)]

    def _parts(self):
        """gamma, beta (None when off), moving_mean, moving_variance; their gradients dgamma, dbeta."""
        weights, grads = list(self.weights), list(self.grads)
        gamma = weights.pop(0) if self.scale else None
        beta = weights.pop(0) if self.center else None
        dgamma = grads.pop(0) if self.scale else None
        dbeta = grads.pop(0) if self.center else None
        return gamma, beta, weights[0], weights[1], dgamma, dbeta

    def forward(self, x, training=False, relu=False):
        """training=True normalises with the batch's statistics and updates the moving ones in place. relu=True
        returns relu of the result, a plain ReLU layer after this one taken over (layers/fusion.py); backward then
        takes the gradient of that output."""
        self.check_input(x)
        x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
        gamma, beta, moving_mean, moving_var, _, _ = self._parts()
        y = reuse(self._buffers, "y", x3.shape, x3.dtype)
        mean = reuse(self._buffers, "mean", (x3.shape[1],), x3.dtype)
        invstd = reuse(self._buffers, "invstd", (x3.shape[1],), x3.dtype)
        _core.batchnorm_forward(y, mean, invstd, moving_mean, moving_var, x3, gamma, beta, self.epsilon,
                                self.momentum, bool(training), relu)
        self._cache = (x3, mean, invstd, bool(training), y if relu else None)
        return y.reshape(x.shape)

    def backward(self, dy, need_dx=True):
        x3, mean, invstd, training, relu_y = self._cache
        gamma, _, _, _, dgamma, dbeta = self._parts()
        dy3 = np.ascontiguousarray(dy).reshape(x3.shape)
        dx = gradient(self, "dx", x3.shape, x3.dtype) if need_dx else None
        _core.batchnorm_backward(dx, dgamma, dbeta, dy3, x3, mean, invstd, gamma, training, not self.overwrites_grads,
                                 relu_y)
        return dx.reshape(dy.shape) if need_dx else None

    def folded(self, layer):
        """(kernel, bias) of `layer`, a Conv2D or Dense with a linear activation whose output this layer
        normalises, with this layer's inference-mode normalisation folded in: the scale gamma/sqrt(moving_var + eps)
        multiplies each output channel's kernel, and bias' = (bias - moving_mean)·scale + beta."""
        gamma, beta, moving_mean, moving_var, _, _ = self._parts()
        dtype = moving_mean.dtype
        scale = (1 / np.sqrt(moving_var.astype(np.float64) + self.epsilon))
        if gamma is not None:
            scale = scale * gamma
        bias = layer.weights[1].astype(np.float64) if layer.use_bias else np.zeros(scale.shape)
        bias = (bias - moving_mean) * scale + (beta if beta is not None else 0)
        kernel = layer.weights[0].astype(np.float64)
        # Conv2D kernels are (out, in, kh, kw): scale the first axis; Dense kernels (in, out): the last
        kernel = kernel * (scale[:, None, None, None] if kernel.ndim == 4 else scale)
        return kernel.astype(dtype), bias.astype(dtype)


def foldable(layer, bn):
    """A Conv2D, or a Dense with (None, units) outputs, whose output goes straight into bn (no activation)."""
    return (isinstance(bn, BatchNormalization) and isinstance(layer, (Conv2D, Dense))
            and layer.activation.name == "linear" and (isinstance(layer, Conv2D) or len(layer.output_shape) == 1))
