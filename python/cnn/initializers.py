"""Weight initializers by name, Keras' definitions (fans of a conv kernel include its window)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from ._types import Initializer

__all__ = ["get", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros", "ones", "random_normal",
           "random_uniform", "orthogonal"]


def _fans(shape):
    """(fan_in, fan_out): dense kernels are (in, out); conv kernels (out, in/groups, kh, kw)."""
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    window = int(np.prod(shape[2:]))
    return shape[1] * window, shape[0] * window


def glorot_uniform(shape, rng, dtype):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(dtype)


def glorot_normal(shape, rng, dtype):
    fan_in, fan_out = _fans(shape)
    return _truncated_normal(rng, np.sqrt(2.0 / (fan_in + fan_out)), shape, dtype)


def he_uniform(shape, rng, dtype):
    limit = np.sqrt(6.0 / _fans(shape)[0])
    return rng.uniform(-limit, limit, shape).astype(dtype)


def he_normal(shape, rng, dtype):
    return _truncated_normal(rng, np.sqrt(2.0 / _fans(shape)[0]), shape, dtype)


def zeros(shape, rng, dtype):
    return np.zeros(shape, dtype)


def ones(shape, rng, dtype):
    return np.ones(shape, dtype)


def random_normal(shape, rng, dtype, stddev=0.05):
    return (rng.standard_normal(shape) * stddev).astype(dtype)


def random_uniform(shape, rng, dtype, limit=0.05):
    return rng.uniform(-limit, limit, shape).astype(dtype)


def orthogonal(shape, rng, dtype):
    """Keras' Orthogonal (gain 1), the recurrent kernels' default: Q of the QR of a normal draw, signs fixed by
    R's diagonal so Q is uniform over the orthogonal matrices; rows of a wide matrix are orthonormal."""
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return (q.T if rows < cols else q).reshape(shape).astype(dtype)


def _truncated_normal(rng, stddev, shape, dtype):
    """Keras' truncated normal: redraw beyond two standard deviations; stddev corrected by 1/0.8796."""
    std = stddev / 0.87962566103423978
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(bad.sum())
        bad = np.abs(out) > 2
    return (out * std).astype(dtype)


_REGISTRY = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, zeros, ones,
                                      random_normal, random_uniform, orthogonal)}


def get(name: Initializer) -> Callable[..., np.ndarray]:
    if callable(name):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown initializer {name!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
