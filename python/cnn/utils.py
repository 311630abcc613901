"""Small helpers with Keras' names: one-hot labels, a global seed and clear_session."""
from __future__ import annotations

import numbers
import random
from typing import TYPE_CHECKING

import numpy as np

from . import _naming

if TYPE_CHECKING:
    from ._types import ArrayLike, DTypeLike

__all__ = ["to_categorical", "set_random_seed", "clear_session"]


def to_categorical(y: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float32") -> np.ndarray:
    """One-hot rows for integer class labels, as keras.utils.to_categorical.

    num_classes defaults to max(y) + 1; a trailing axis of length 1 is dropped ((N, 1) gives (N, C))."""
    arr = np.asarray(y)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("to_categorical needs whole-number class labels, got non-integer values")
    elif arr.dtype.kind not in "biu":
        raise TypeError(f"to_categorical needs integer class labels, got dtype {arr.dtype}")
    shape = arr.shape[:-1] if arr.ndim > 1 and arr.shape[-1] == 1 else arr.shape
    labels = arr.reshape(-1).astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical needs labels >= 0, got {labels.min()}")
    if num_classes is None:
        if not labels.size:
            raise ValueError("to_categorical cannot infer num_classes from empty labels; pass num_classes=")
        num_classes = int(labels.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"to_categorical got label {labels.max()}, out of range for num_classes={num_classes}")
    out = np.zeros((labels.size, int(num_classes)), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(tuple(shape) + (int(num_classes),))


def set_random_seed(seed: int) -> None:
    """Seed Python's `random` and NumPy's global generator, so models built without seed= repeat."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed))


def clear_session() -> None:
    """Keras' clear_session: automatic names start again ('dense', 'sequential', ...). cnn keeps no graph or
    global model state, so there is nothing else to free; models already made keep their names."""
    _naming.reset()
