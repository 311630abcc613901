"""Weight penalties added to the training loss (Keras semantics: l2(x) adds x·Σw²)."""
from __future__ import annotations

from ._validation import check_number

__all__ = ["L2", "l2", "get"]


class L2:
    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = float(check_number(l2, "l2", low=0))

    def __repr__(self):
        return f"L2(l2={self.l2})"


def l2(l2: float = 0.01) -> L2:
    return L2(l2)


def get(value: str | L2 | None) -> L2 | None:
    if value is None or isinstance(value, L2):
        return value
    if value == "l2":
        return L2()
    raise ValueError(f"unknown regularizer {value!r}; use cnn.regularizers.l2(x) or 'l2'")
