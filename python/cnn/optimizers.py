"""Optimizers: each updates the model's one flat parameter vector with one C call per step.

variant='keras' (the default, since the model API is Keras') keeps the velocity v = μv - lr·g, puts
epsilon on the uncorrected sqrt(v) and decays weights decoupled (w -= lr·wd·w), as Keras and
scikit-learn do. variant='torch' follows torch.optim exactly: momentum buffer b = μb + (1-τ)g,
epsilon after bias correction, weight_decay as coupled L2 (g += wd·w); AdamW is decoupled in both.
With a constant learning rate and no dampening both SGD variants follow the same trajectory.

Keras 2 spelled the learning rate `lr`: every optimizer takes lr= as an alias (when given it wins, as in
Keras 2) and has an `lr` attribute that reads and sets learning_rate."""
from __future__ import annotations

import numpy as np

from . import _core, schedules  # noqa: F401 (cnn.optimizers.schedules, as keras.optimizers.schedules)
from ._validation import check_choice, check_number

__all__ = ["SGD", "Adam", "AdamW", "get"]

_VARIANTS = {"torch": _core.OPT_TORCH, "keras": _core.OPT_KERAS}


class Optimizer:
    def __init__(self, learning_rate: float, weight_decay: float | None, variant: str, lr: float | None = None) -> None:
        if lr is not None:
            learning_rate = check_number(lr, "lr", low=0)
        self.learning_rate = float(check_number(learning_rate, "learning_rate", low=0))
        self.weight_decay = float(check_number(weight_decay or 0.0, "weight_decay", low=0))
        self.variant = check_choice(variant, "variant", _VARIANTS)
        self.iterations = 0

    def state(self) -> list[np.ndarray]:
        """Optimizer state arrays (for save/load), in a fixed order."""
        return []

    def reset(self) -> None:
        """Forget the step count and state: the parameter buffer was laid out anew."""
        self.iterations = 0
        self.__dict__.update({k: None for k in self._state_names})

    @property
    def lr(self) -> float:
        """Keras 2's name for learning_rate."""
        return self.learning_rate

    @lr.setter
    def lr(self, value: float) -> None:
        self.learning_rate = float(check_number(value, "lr", low=0))


class SGD(Optimizer):
    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0, variant: str = "keras", *,
                 lr: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, variant, lr)
        self.momentum = float(check_number(momentum, "momentum", low=0, high=1))
        self.dampening = float(check_number(dampening, "dampening"))
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or (variant == "torch" and self.dampening != 0)):
            raise ValueError("nesterov momentum needs momentum > 0 (and dampening = 0 in the torch variant)")
        self._buf = None

    _state_names = ("_buf",)

    def state(self):
        return [] if self._buf is None else [self._buf]

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self.momentum and self._buf is None:
            self._buf = np.zeros_like(params)
        _core.sgd_step(params, self._buf, grads, self.learning_rate, self.momentum, self.dampening,
                       self.weight_decay, self.nesterov, self.iterations == 0, _VARIANTS[self.variant])
        self.iterations += 1

    def __repr__(self):
        return (f"SGD(learning_rate={self.learning_rate}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"variant={self.variant!r})")


class Adam(Optimizer):
    """epsilon defaults to 1e-7 in the keras variant and 1e-8 in the torch variant, as in each library."""

    _decoupled = False

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float | None = None, weight_decay: float = 0.0, variant: str = "keras", *,
                 lr: float | None = None) -> None:
        super().__init__(learning_rate, weight_decay, variant, lr)
        self.beta_1 = float(check_number(beta_1, "beta_1", low=0, high=1, high_open=True))
        self.beta_2 = float(check_number(beta_2, "beta_2", low=0, high=1, high_open=True))
        if epsilon is None:
            epsilon = 1e-7 if variant == "keras" else 1e-8
        self.epsilon = float(check_number(epsilon, "epsilon", low=0))
        self._m = self._v = None

    _state_names = ("_m", "_v")

    def state(self):
        return [] if self._m is None else [self._m, self._v]

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self._m is None:
            self._m, self._v = np.zeros_like(params), np.zeros_like(params)
        _core.adam_step(params, self._m, self._v, grads, self.learning_rate, self.beta_1, self.beta_2,
                        self.epsilon, self.weight_decay, self._decoupled, self.iterations + 1,
                        _VARIANTS[self.variant])
        self.iterations += 1

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate}, variant={self.variant!r})"


class AdamW(Adam):
    """Adam with decoupled weight decay (w *= 1 - lr·wd before the step), as torch.optim.AdamW."""

    _decoupled = True

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float | None = None, variant: str = "keras", *,
                 lr: float | None = None) -> None:
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, variant, lr=lr)


_REGISTRY = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(optimizer: str | Optimizer) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be an optimizer name or a cnn.optimizers.Optimizer, "
                        f"got {type(optimizer).__name__}: {optimizer!r}")
    key = optimizer.lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]()
