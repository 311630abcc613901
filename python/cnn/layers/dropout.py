"""Dropout: inverted dropout, active only while training (fit, train_on_batch)."""
from __future__ import annotations

from typing import TYPE_CHECKING


from .._validation import check_number
from ._random import RandomLayerMixin
from .base import Layer

if TYPE_CHECKING:
    from .._types import Shape


class Dropout(RandomLayerMixin, Layer):
    """Zeroes each input with probability `rate` and scales the kept ones by 1/(1 - rate) while training,
    so inference needs no rescaling; the identity in predict and evaluate.

    The mask is drawn from the model's generator (so `Sequential(seed=...)` makes a fit reproducible),
    or from the layer's own generator when `seed` is given."""

    def __init__(self, rate: float, seed: int | None = None, name: str | None = None,
                 input_shape: Shape | None = None) -> None:
        super().__init__(name=name, input_shape=input_shape)
        self.rate = float(check_number(rate, "rate", low=0, high=1))
        self._init_seed(seed)
        self._mask = None

    def forward(self, x, training=False, logits=False):
        self.check_input(x)
        if not training or self.rate == 0:
            self._mask = None
            return x
        keep = self.generator().random(x.shape, dtype=x.dtype) >= self.rate
        scale = 0.0 if self.rate == 1 else 1.0 / (1.0 - self.rate)
        self._mask = keep * x.dtype.type(scale)
        return x * self._mask

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return dy if self._mask is None else dy * self._mask
