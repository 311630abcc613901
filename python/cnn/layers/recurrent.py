"""SimpleRNN, LSTM and GRU: Keras's recurrent layers over inputs (batch, time, features), run by rnn.c.

Semantics, as read from Keras 3's sources (keras/src/layers/rnn/{simple_rnn,lstm,gru,rnn}.py) and PyTorch's
(torch/nn/modules/rnn.py, aten/src/ATen/native/RNN.cpp):
- weights [kernel (in, g·units), recurrent_kernel (units, g·units), bias], the gate blocks of the last axis in
  Keras's order: SimpleRNN one block; LSTM i, f, c, o (PyTorch's i, f, g, o: the same order); GRU z, r, h
  (PyTorch's r, z, n: z and r swap). PyTorch's weight_ih is the kernel transposed and it has two biases
  b_ih + b_hh, which add for SimpleRNN and LSTM; the GRU keeps them apart in a (2, 3·units) bias,
  row 0 the input bias, row 1 the recurrent one (reset_after=True, the cuDNN and PyTorch form):
  n = tanh(x·W_h + b_xh + r·(h·R_h + b_hh)), h' = z·h + (1 - z)·n.
- LSTM: c' = f·c + i·tanh(z_c), h' = o·tanh(c'); unit_forget_bias=True starts the forget block of the bias at 1.
- activation tanh and recurrent_activation sigmoid (the only ones the fused C gates run for LSTM and GRU;
  SimpleRNN takes tanh, relu, sigmoid or linear, as PyTorch's nonlinearity='tanh'/'relu').
- return_sequences: every step's h (batch, time, units), else the last (batch, units). return_state: calling
  the layer (`layer(x)`) returns [output, h] (LSTM [output, h, c]); in a Sequential only the output flows on.
- go_backwards: the sequence is read from its last step, and the returned sequence stays in that processing
  order (Keras does not flip it back; Bidirectional does).
- stateful: each batch starts from the previous batch's final state (same batch size), until reset_states();
  gradients do not flow back into the previous batch.
The default initializers are Keras's: kernel glorot_uniform, recurrent_kernel orthogonal, bias zeros."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core, activations, initializers
from .._validation import INT_MAX, check_number
from ._buffers import reuse
from ._workspace import gradient
from .base import Layer

if TYPE_CHECKING:
    from .._types import Initializer, Shape

_SIMPLE_ACTS = {"tanh": _core.ACT_TANH, "relu": _core.ACT_RELU, "sigmoid": _core.ACT_SIGMOID,
                "linear": _core.ACT_IDENTITY}


class _Recurrent(Layer):
    """One implementation behind SimpleRNN, LSTM and GRU; CELL names the C cell and GATES its gate blocks."""

    overwrites_grads = True
    CELL = GATES = None
    STATES = 1  # h, and the LSTM's c

    @classmethod
    def default_name(cls):
        return "simple_rnn" if cls is SimpleRNN else cls.__name__.lower()  # Keras's names

    def _setup(self, units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
               bias_initializer, return_sequences, return_state, go_backwards, stateful):
        self.units = check_number(units, "units", low=1, high=INT_MAX // self.GATES, integer=True)
        self.activation = activations.get(activation)
        name = self.activation.name
        if self.CELL == _core.CELL_RNN and name not in _SIMPLE_ACTS:
            raise ValueError(f"SimpleRNN's activation must be one of {', '.join(_SIMPLE_ACTS)}, got {name!r}")
        if self.CELL != _core.CELL_RNN and name != "tanh":
            raise ValueError(f"{type(self).__name__}'s activation must be 'tanh' (the fused C gates), got {name!r}")
        if recurrent_activation is not None and activations.get(recurrent_activation).name != "sigmoid":
            raise ValueError(f"{type(self).__name__}'s recurrent_activation must be 'sigmoid', "
                             f"got {recurrent_activation!r}")
        self._act = _SIMPLE_ACTS[name]
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), bool(stateful)
        self._buffers = {}
        self.states = None  # the final states of the last forward (stateful: the next batch's initial states)
        self.initial_state_grads = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects inputs (batch, time, features), "
                             f"got input shape (None, {', '.join(map(str, input_shape))})")
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def weight_specs(self):
        gu = self.GATES * self.units
        specs = [("kernel", (self.input_shape[-1], gu), self.kernel_initializer),
                 ("recurrent_kernel", (self.units, gu), self.recurrent_initializer)]
        if self.use_bias:
            specs.append(("bias", (2, gu) if self.CELL == _core.CELL_GRU else (gu,), self._bias_initializer()))
        return specs

    def reset_states(self) -> None:
        """Forget the carried state of a stateful layer: the next batch starts from zeros."""
        self.states = None

    def _code_args(self):
        return self.CELL, self._act, self.go_backwards, self.return_sequences

    def forward(self, x, training=False, logits=False, initial_state=None):
        """y for x (N, T, IN): (N, T, U) with return_sequences, else (N, U). initial_state: [h0] or [h0, c0] for
        the LSTM (None: zeros, or the carried state when stateful). The final states land in self.states. The
        result lives in a buffer the layer's next call overwrites."""
        self.check_input(x)
        x = np.ascontiguousarray(x)
        n, steps, _ = x.shape
        dtype, u = x.dtype, self.units
        if initial_state is None and self.stateful and self.states is not None:
            if self.states[0].shape[0] != n:
                raise ValueError(f"layer {self.name!r} is stateful: every batch must have the size of the first "
                                 f"({self.states[0].shape[0]}), got {n}; call reset_states() to start over")
            initial_state = self.states
        if initial_state is not None:
            initial_state = [np.ascontiguousarray(s, dtype) for s in initial_state]
            if len(initial_state) != self.STATES or any(s.shape != (n, u) for s in initial_state):
                raise ValueError(f"layer {self.name!r}: initial_state must be {self.STATES} array(s) of shape "
                                 f"({n}, {u}), got {[np.shape(s) for s in initial_state]}")
        h0, c0 = (initial_state + [None])[:2] if initial_state is not None else (None, None)
        cache = reuse(self._buffers, "cache", (_core.rnn_scratch_size(x.shape, u, self.CELL, False),), dtype)
        y = reuse(self._buffers, "y", (n, steps, u) if self.return_sequences else (n, u), dtype)
        # fresh arrays: the caller keeps them (return_state), and a stateful layer reads them next batch
        states = [np.empty((n, u), dtype) for _ in range(self.STATES)]
        _core.rnn_forward(y, states[0], states[1] if self.STATES == 2 else None, cache, x, *self._weights(),
                          h0, c0 if self.STATES == 2 else None, *self._code_args())
        self.states = states
        self._cache = (x.shape, cache, initial_state is not None)
        return y

    def _weights(self):
        return self.weights[0], self.weights[1], self.weights[2] if self.use_bias else None

    def __call__(self, x, initial_state=None, training=False):
        """Keras's call: the output, or [output, h] ([output, h, c] for the LSTM) with return_state."""
        y = self.forward(x, training=training, initial_state=initial_state)
        return [y, *self.states] if self.return_state else y

    def backward(self, dy, need_dx=True, dstates=None):
        """dx from dy (shaped as the output) and dstates, the gradients of the final states ([dh] or [dh, dc];
        None: zeros). Writes the weight gradients; the initial states' gradients land in
        self.initial_state_grads when the forward was given initial states (or carried them)."""
        shape, cache, has_initial = self._cache
        n, steps, _ = shape
        dtype, u = cache.dtype, self.units
        dy = np.ascontiguousarray(dy, dtype)
        lstm = self.STATES == 2
        dh_last, dc_last = ([np.ascontiguousarray(s, dtype) for s in dstates] + [None])[:2] if dstates else (None, None)
        dx = gradient(self, "dx", shape, dtype) if need_dx else None
        dinit = [np.empty((n, u), dtype) for _ in range(self.STATES)] if has_initial else [None, None]
        work = gradient(self, "work", (_core.rnn_scratch_size(shape, u, self.CELL, True),), dtype)
        _core.rnn_backward(dx, dinit[0], dinit[1] if lstm else None, self.grads[0], self.grads[1],
                           self.grads[2] if self.use_bias else None, work, dy, dh_last, dc_last if lstm else None,
                           cache, self.weights[0], self.weights[1], steps, *self._code_args(), False)
        self.initial_state_grads = dinit[:self.STATES] if has_initial else None
        return dx


class SimpleRNN(_Recurrent):
    """h_t = activation(x_t·kernel + h_{t-1}·recurrent_kernel + bias): "an RNN is like an IIR filter" (torch.nn.RNN
    with bias = b_ih + b_hh)."""

    CELL, GATES = _core.CELL_RNN, 1

    def __init__(self, units: int, activation: str | None = "tanh", use_bias: bool = True,
                 kernel_initializer: Initializer = "glorot_uniform",
                 recurrent_initializer: Initializer = "orthogonal", bias_initializer: Initializer = "zeros",
                 return_sequences: bool = False, return_state: bool = False, go_backwards: bool = False,
                 stateful: bool = False, input_shape: Shape | None = None, name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self._setup(units, activation, None, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                    return_sequences, return_state, go_backwards, stateful)


class LSTM(_Recurrent):
    """Long short-term memory, gates i, f, c, o in that order along the kernels' last axis (torch.nn.LSTM's i, f,
    g, o); unit_forget_bias=True initializes the forget gate's bias to 1 (Jozefowicz et al. 2015)."""

    CELL, GATES, STATES = _core.CELL_LSTM, 4, 2

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
                 recurrent_initializer: Initializer = "orthogonal", bias_initializer: Initializer = "zeros",
                 unit_forget_bias: bool = True, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, input_shape: Shape | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
                    bias_initializer, return_sequences, return_state, go_backwards, stateful)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, u = self.bias_initializer, self.units

        def forget_one(shape, rng, dtype):  # Keras: init for i, ones for f, init for c and o
            return np.concatenate([init((u,), rng, dtype), np.ones(u, dtype), init((2 * u,), rng, dtype)])
        return forget_one


class GRU(_Recurrent):
    """Gated recurrent unit, gates z, r, h along the kernels' last axis (torch.nn.GRU's r, z, n), reset_after=True:
    the reset gate multiplies the projected state, and bias is (2, 3·units): input bias, recurrent bias."""

    CELL, GATES = _core.CELL_GRU, 3

    def __init__(self, units: int, activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Initializer = "glorot_uniform",
                 recurrent_initializer: Initializer = "orthogonal", bias_initializer: Initializer = "zeros",
                 reset_after: bool = True, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, input_shape: Shape | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        if not reset_after:
            raise ValueError("GRU supports reset_after=True only (Keras 3's default, and PyTorch's form)")
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
                    bias_initializer, return_sequences, return_state, go_backwards, stateful)
        self.reset_after = True
