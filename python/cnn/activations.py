"""Activations by name. Each is a small object whose forward/backward call one C kernel."""
from __future__ import annotations

import numpy as np

from . import _core
from ._validation import check_number

__all__ = ["get", "names", "ActivationFunction", "Softmax", "leaky_relu", "scaled_tanh"]


class ActivationFunction:
    """y = f(x) element-wise through activation_forward; f'(x) from y (and x)."""

    def __init__(self, name: str, code: int | None, alpha: float = 0.0, beta: float = 1.0) -> None:
        self.name, self.code, self.alpha, self.beta = name, code, alpha, beta

    def forward(self, x, out=None):
        """f(x), written into `out` when given (a buffer shaped as x)."""
        if self.code == _core.ACT_IDENTITY:
            return x
        y = np.empty_like(x) if out is None else out
        _core.activation_forward(y, x, self.code, self.alpha, self.beta)
        return y

    def backward(self, dy, x, y, out=None):
        if self.code == _core.ACT_IDENTITY:
            return dy
        dx = np.empty_like(dy) if out is None else out
        _core.activation_backward(dx, dy, x, y, self.code, self.alpha, self.beta)
        return dx

    def __repr__(self):
        return f"activation {self.name!r}"


class Softmax(ActivationFunction):
    """softmax (or log-softmax) over the last axis; inputs of rank > 2 are treated as rows."""

    def __init__(self, name: str, log: bool = False) -> None:
        super().__init__(name, None)
        self.log = log

    def forward(self, x, out=None):
        rows = x.reshape(-1, x.shape[-1])
        y = np.empty_like(rows) if out is None else out.reshape(rows.shape)
        (_core.log_softmax_forward if self.log else _core.softmax_forward)(y, rows)
        return y.reshape(x.shape)

    def backward(self, dy, x, y, out=None):
        shape = dy.shape
        dy, y = dy.reshape(-1, shape[-1]), y.reshape(-1, shape[-1])
        dx = np.empty_like(dy) if out is None else out.reshape(dy.shape)
        (_core.log_softmax_backward if self.log else _core.softmax_backward)(dx, dy, y)
        return dx.reshape(shape)


# activation_backward reads only y for these (activations.c), so a layer may write y over its input and keep one
# buffer; leaky relu and softmax need their input
DERIVATIVE_FROM_Y = frozenset((_core.ACT_SIGMOID, _core.ACT_TANH, _core.ACT_SCALED_TANH, _core.ACT_RELU))

_REGISTRY = {
    "linear": lambda: ActivationFunction("linear", _core.ACT_IDENTITY),
    "sigmoid": lambda: ActivationFunction("sigmoid", _core.ACT_SIGMOID),
    "tanh": lambda: ActivationFunction("tanh", _core.ACT_TANH),
    # the LeNet-5 squashing function 1.7159·tanh(x) (LeCun et al. 1998 use tanh(2x/3))
    "scaled_tanh": lambda: ActivationFunction("scaled_tanh", _core.ACT_SCALED_TANH, 1.7159, 1.0),
    "relu": lambda: ActivationFunction("relu", _core.ACT_RELU),
    "leaky_relu": lambda: ActivationFunction("leaky_relu", _core.ACT_LEAKY_RELU, 0.2),
    "softmax": lambda: Softmax("softmax"),
    "log_softmax": lambda: Softmax("log_softmax", log=True),
}
_ALIASES = {None: "linear", "identity": "linear", "logistic": "sigmoid"}


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str | ActivationFunction | None) -> ActivationFunction:
    """An activation by name (None means linear), or an ActivationFunction passed through."""
    if isinstance(name, ActivationFunction):
        return name
    if name is not None and not isinstance(name, str):
        raise TypeError(f"activation must be a name or an ActivationFunction, got {name!r}")
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[key]()


def leaky_relu(negative_slope: float = 0.2) -> ActivationFunction:
    """Leaky ReLU with the given slope for x < 0 (Keras' default slope is 0.2, PyTorch's 0.01)."""
    return ActivationFunction("leaky_relu", _core.ACT_LEAKY_RELU, float(negative_slope))


def scaled_tanh(a: float = 1.7159, s: float = 1.0) -> ActivationFunction:
    """a·tanh(s·x); a must be finite and non-zero."""
    if check_number(a, "scaled_tanh: the scale a") == 0:
        raise ValueError("scaled_tanh: the scale a must be non-zero, got 0")
    return ActivationFunction("scaled_tanh", _core.ACT_SCALED_TANH, float(a), float(s))
