"""Embedding: integer ids (batch, length) → rows of a table (batch, length, output_dim), as keras.layers.Embedding.

The model feeds floats; the ids must be whole numbers in [0, input_dim). The table's gradient is a scatter
(embedding.c): an id that occurs twice receives both rows of dy."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core, initializers
from .._validation import INT_MAX, check_number
from ._buffers import reuse
from .base import Layer

if TYPE_CHECKING:
    from .._types import Initializer, Shape


class Embedding(Layer):
    """y[..., :] = embeddings[x[...]], embeddings (input_dim, output_dim); Keras's default init U(-0.05, 0.05)."""

    overwrites_grads = True

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Initializer = "random_uniform",
                 input_shape: Shape | None = None, input_length: int | None = None,
                 name: str | None = None) -> None:
        if input_shape is None and input_length is not None:
            input_shape = (input_length,)
        super().__init__(name=name, input_shape=input_shape)
        self.input_dim = check_number(input_dim, "input_dim", low=1, high=INT_MAX, integer=True)
        self.output_dim = check_number(output_dim, "output_dim", low=1, high=INT_MAX, integer=True)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self._buffers = {}

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def weight_specs(self):
        return [("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)]

    def _ids(self, x):
        ids = np.asarray(x).astype(np.int64).reshape(-1)
        flat = np.asarray(x).reshape(-1)
        bad = (ids != flat) | (ids < 0) | (ids >= self.input_dim)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"layer {self.name!r} (Embedding) takes whole-number ids in [0, {self.input_dim}), "
                             f"got {flat[i]!r} at flat position {i}")
        return ids

    def forward(self, x, training=False, logits=False):
        self.check_input(x)
        ids = self._ids(x)
        table = self.weights[0]
        y = reuse(self._buffers, "y", (ids.size, self.output_dim), table.dtype)
        _core.embedding_forward(y, ids, table)
        self._cache = (np.shape(x), ids)
        return y.reshape(np.shape(x) + (self.output_dim,))

    def backward(self, dy, need_dx=True):
        shape, ids = self._cache
        dy = np.ascontiguousarray(dy, self.grads[0].dtype).reshape(ids.size, self.output_dim)
        _core.embedding_backward(self.grads[0], dy, ids, False)
        return np.zeros(shape, dy.dtype) if need_dx else None  # ids have no gradient
