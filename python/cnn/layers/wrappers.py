"""TimeDistributed and Bidirectional: layers that run other layers.

A wrapper's weights are its inner layers' weights in order (Keras's get_weights order: Bidirectional's forward
layer, then its backward layer), handed on as views of the model's flat buffers when the model assigns them."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._validation import check_choice
from .base import Layer

if TYPE_CHECKING:
    from .._types import Shape


class _Wrapper(Layer):
    """Weights, gradients, penalties and the gradient contract of the inner layers (self._inner)."""

    _inner = ()

    @property
    def weights(self):
        return [w for layer in self._inner for w in layer.weights]

    @weights.setter
    def weights(self, value):
        self._split(value, "weights")

    @property
    def grads(self):
        return [g for layer in self._inner for g in layer.grads]

    @grads.setter
    def grads(self, value):
        self._split(value, "grads")

    def _split(self, value, attr):
        value, i = list(value), 0
        for layer in self._inner:
            k = len(layer.weight_specs()) if layer.built else 0
            setattr(layer, attr, value[i:i + k])
            i += k

    @property
    def overwrites_grads(self):
        return all(layer.overwrites_grads for layer in self._inner)

    def weight_specs(self):
        return [spec for layer in self._inner for spec in layer.weight_specs()]

    def penalty(self):
        return [p for layer in self._inner for p in layer.penalty()]


class TimeDistributed(_Wrapper):
    """Applies `layer` to every time step: (N, T, ...) runs as (N·T, ...) through it (Keras's TimeDistributed).
    A Dense over the last axis of a 3-D input does the same by itself."""

    def __init__(self, layer: Layer, input_shape: Shape | None = None, name: str | None = None) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps a cnn.layers.Layer, got {type(layer).__name__}")
        super().__init__(name=name, input_shape=input_shape)
        self.layer = layer
        self._inner = (layer,)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"layer {self.name!r} (TimeDistributed) expects inputs (batch, time, ...), got input "
                             f"shape (None, {', '.join(map(str, input_shape))})")
        return (input_shape[0],) + tuple(self.layer.build(tuple(input_shape[1:])))

    def forward(self, x, training=False, logits=False):
        self.check_input(x)
        n, t = x.shape[:2]
        y = self.layer.forward(np.ascontiguousarray(x).reshape((n * t,) + x.shape[2:]), training=training)
        self._nt = (n, t, x.shape)
        return y.reshape((n, t) + y.shape[1:])

    def backward(self, dy, need_dx=True):
        n, t, shape = self._nt
        dx = self.layer.backward(np.ascontiguousarray(dy).reshape((n * t,) + self.layer.output_shape), need_dx=need_dx)
        return dx.reshape(shape) if need_dx else None


class Bidirectional(_Wrapper):
    """Runs `layer` forward and a copy with go_backwards flipped (or `backward_layer`), and merges their outputs:
    'concat' (default), 'sum', 'ave' or 'mul'. With return_sequences the backward layer's sequence is flipped
    back to input order before the merge, as Keras does, so step t of both halves has read x_t."""

    MODES = ("concat", "sum", "ave", "mul")

    def __init__(self, layer: Layer, merge_mode: str = "concat", backward_layer: Layer | None = None,
                 input_shape: Shape | None = None, name: str | None = None) -> None:
        if not hasattr(layer, "go_backwards"):
            raise TypeError(f"Bidirectional wraps a recurrent layer (SimpleRNN, LSTM, GRU), got {type(layer).__name__}")
        super().__init__(name=name, input_shape=input_shape)
        self.merge_mode = check_choice(merge_mode, "merge_mode", self.MODES)
        if backward_layer is None:
            config = {**layer.get_config(), "go_backwards": not layer.go_backwards, "name": None}
            backward_layer = type(layer).from_config(config)
        if (backward_layer.go_backwards == layer.go_backwards
                or backward_layer.return_sequences != layer.return_sequences):
            raise ValueError("backward_layer must read the other way (go_backwards) and match return_sequences")
        for prefix, inner in (("forward", layer), ("backward", backward_layer)):
            inner.name = inner.name or f"{prefix}_{inner.default_name()}"  # Keras's names
        self.forward_layer, self.backward_layer = layer, backward_layer
        self._inner = (layer, backward_layer)

    def compute_output_shape(self, input_shape):
        shape = tuple(self.forward_layer.build(tuple(input_shape)))
        back = tuple(self.backward_layer.build(tuple(input_shape)))
        if shape[:-1] != back[:-1] or (self.merge_mode != "concat" and shape != back):
            raise ValueError(f"layer {self.name!r}: the forward and backward outputs {shape} and {back} do not merge "
                             f"by {self.merge_mode!r}")
        return shape[:-1] + (shape[-1] + back[-1],) if self.merge_mode == "concat" else shape

    def _flip(self, a):
        return a[:, ::-1] if self.forward_layer.return_sequences else a

    def forward(self, x, training=False, logits=False):
        self.check_input(x)
        yf = self.forward_layer.forward(x, training=training)
        yb = self._flip(self.backward_layer.forward(x, training=training))
        self._outputs = (yf, yb)
        if self.merge_mode == "concat":
            return np.concatenate([yf, yb], axis=-1)
        if self.merge_mode == "sum":
            return yf + yb
        if self.merge_mode == "ave":
            return (yf + yb) / 2
        return yf * yb

    def backward(self, dy, need_dx=True):
        yf, yb = self._outputs
        if self.merge_mode == "concat":
            dyf, dyb = dy[..., :yf.shape[-1]], dy[..., yf.shape[-1]:]
        elif self.merge_mode == "sum":
            dyf = dyb = dy
        elif self.merge_mode == "ave":
            dyf = dyb = dy / 2
        else:
            dyf, dyb = dy * yb, dy * yf
        dxf = self.forward_layer.backward(np.ascontiguousarray(dyf), need_dx=need_dx)
        dxb = self.backward_layer.backward(np.ascontiguousarray(self._flip(dyb)), need_dx=need_dx)
        return dxf + dxb if need_dx else None
