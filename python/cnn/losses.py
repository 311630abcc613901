"""Losses by name. Each maps (model output, targets) to (mean loss, gradient w.r.t. the output).

A cross-entropy after a softmax (or sigmoid) output layer is computed from the layer's logits in one
fused, stable C call; the model asks `fuses(activation)` to decide. Without that activation the
output is taken as probabilities, clipped to [1e-7, 1 - 1e-7] as Keras does.

Each class also gives `per_sample(y_true, y_pred)`, the loss of every sample (Keras' reduction='none'),
which weighs samples in fit(sample_weight=...) and backs the lower-case functions Keras exports
(`categorical_crossentropy(y_true, y_pred)`, ...). `loss=` takes those functions too: get() maps each one
to its class, so training still runs the C kernels."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from . import _core
from ._validation import as_float_array, as_labels, check_number

if TYPE_CHECKING:
    from ._types import ArrayLike

__all__ = ["get", "Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "MulticlassHinge", "categorical_crossentropy", "sparse_categorical_crossentropy",
           "binary_crossentropy", "mean_squared_error", "mse", "multiclass_hinge"]

EPSILON = 1e-7


class Loss:
    name = None
    sparse = False  # targets are class indices
    fused_activation = None  # the output activation this loss can absorb

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def fuses(self, activation_name):
        return not self.from_logits and activation_name == self.fused_activation

    def targets(self, y, output_shape, dtype):
        n = output_shape[0]
        if self.sparse:
            return as_labels(y, "y", output_shape[-1], n)
        y = as_float_array(y, "y", dtype)
        if y.shape != tuple(output_shape):
            if y.size == np.prod(output_shape):
                return np.ascontiguousarray(y.reshape(output_shape))
            raise ValueError(f"y must have shape {tuple(output_shape)} to match the model output, got {y.shape}")
        return y

    def __call__(self, out, y, logits=False, grad=True):
        """out (N, K) model output (or its logits when logits=True); y targets; returns (loss, dout). An output of
        rank > 2 (an image, as an autoencoder's) is taken as rows of its N·K values, and dout keeps its shape."""
        shape, out = out.shape, out.reshape(out.shape[0], -1)
        if not self.sparse:  # a sequence's targets (N, T, K) flatten as its outputs do
            y = y.reshape(out.shape)
        dout = np.empty_like(out) if grad else None
        if logits or self.from_logits or self.fused_activation is None:
            value = self._kernel(dout, out, y)
        else:
            value = self._from_probabilities(dout, out, y)
        return value, (None if dout is None else dout.reshape(shape))

    def per_sample(self, y_true, y_pred, logits=False):
        """The loss of each sample (N,) in float64, for y_pred (N, ...) the model output (its logits when
        logits=True) and y_true as `targets` returns it; the C kernel's value is the mean of these."""
        out = np.asarray(y_pred, np.float64)
        out = out.reshape(len(out), -1)
        y = np.asarray(y_true) if self.sparse else np.asarray(y_true, np.float64).reshape(out.shape)
        return self._per_sample(out, y, logits or self.from_logits)

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class CategoricalCrossentropy(Loss):
    name, fused_activation = "categorical_crossentropy", "softmax"

    def _kernel(self, dout, out, y):
        return _core.cross_entropy_loss(dout, out, y)

    def _from_probabilities(self, dout, p, y):
        p = np.clip(p / p.sum(axis=1, keepdims=True), EPSILON, 1 - EPSILON)
        if dout is not None:
            dout[...] = -y / p / len(p)
        return float(-(y * np.log(p)).sum(axis=1).mean())

    def _per_sample(self, out, y, logits):
        if logits:
            shifted = out - out.max(axis=1, keepdims=True)
            return -(y * (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))).sum(axis=1)
        p = np.clip(out / out.sum(axis=1, keepdims=True), EPSILON, 1 - EPSILON)
        return -(y * np.log(p)).sum(axis=1)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    name, sparse = "sparse_categorical_crossentropy", True

    def _kernel(self, dout, out, y):
        return _core.sparse_cross_entropy_loss(dout, out, y)

    def _from_probabilities(self, dout, p, y):
        onehot = np.zeros_like(p)
        onehot[np.arange(len(y)), y] = 1
        return super()._from_probabilities(dout, p, onehot)

    def _per_sample(self, out, y, logits):
        onehot = np.zeros_like(out)
        onehot[np.arange(len(out)), y.reshape(-1).astype(np.int64)] = 1
        return super()._per_sample(out, onehot, logits)


class BinaryCrossentropy(Loss):
    name, fused_activation = "binary_crossentropy", "sigmoid"

    def _kernel(self, dout, out, y):
        return _core.binary_cross_entropy_loss(dout, out, y)

    def _from_probabilities(self, dout, p, y):
        p = np.clip(p, EPSILON, 1 - EPSILON)
        if dout is not None:
            dout[...] = (p - y) / (p * (1 - p)) / p.size
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    def _per_sample(self, out, y, logits):
        if logits:  # log(1 + e^-|z|) + max(z, 0) - y·z, stable for any z
            return (np.logaddexp(0, -np.abs(out)) + np.maximum(out, 0) - y * out).mean(axis=1)
        p = np.clip(out, EPSILON, 1 - EPSILON)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def _kernel(self, dout, out, y):
        return _core.mse_loss(dout, out, y)

    def _per_sample(self, out, y, logits):
        return ((out - y) ** 2).mean(axis=1)


class MulticlassHinge(Loss):
    """The multiclass SVM loss: mean over samples of Σ_{j≠y} max(0, s_j - s_y + margin), on raw scores.

    Equals PyTorch's MultiMarginLoss times the number of classes."""
    name, sparse = "multiclass_hinge", True

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__(from_logits=True)
        self.margin = float(check_number(margin, "margin"))

    def _kernel(self, dout, out, y):
        return _core.multiclass_hinge_loss(dout, out, y, self.margin)

    def _per_sample(self, out, y, logits):
        y = y.reshape(-1).astype(np.int64)
        correct = out[np.arange(len(out)), y][:, None]
        margins = np.maximum(0, out - correct + self.margin)
        margins[np.arange(len(out)), y] = 0
        return margins.sum(axis=1)


# Keras' lower-case loss functions: y_true, y_pred -> the loss of each sample (N,)
def categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False) -> np.ndarray:
    return CategoricalCrossentropy(from_logits).per_sample(y_true, y_pred)


def sparse_categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False) -> np.ndarray:
    return SparseCategoricalCrossentropy(from_logits).per_sample(y_true, y_pred)


def binary_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False) -> np.ndarray:
    return BinaryCrossentropy(from_logits).per_sample(y_true, y_pred)


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    return MeanSquaredError().per_sample(y_true, y_pred)


def multiclass_hinge(y_true: ArrayLike, y_pred: ArrayLike, margin: float = 1.0) -> np.ndarray:
    return MulticlassHinge(margin).per_sample(y_true, y_pred)


mse = mean_squared_error


_REGISTRY = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "multiclass_hinge": MulticlassHinge,
}
_ALIASES = {"mse": "mean_squared_error", "MSE": "mean_squared_error", "hinge": "multiclass_hinge",
            "svm": "multiclass_hinge"}
_FUNCTIONS = {f: f.__name__ for f in (categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy,
                                      mean_squared_error, multiclass_hinge)}


def get(loss: str | Loss | Callable) -> Loss:
    """A Loss from a name, a Loss instance (passed through) or one of this module's loss functions."""
    if isinstance(loss, Loss):
        return loss
    if callable(loss) and not isinstance(loss, type):
        if loss not in _FUNCTIONS:
            raise TypeError(f"loss {getattr(loss, '__name__', loss)!r} is a function cnn does not know: training "
                            "needs the gradient of a loss, which cnn's kernels give only for its own losses; pass "
                            f"a name ({', '.join(sorted(_REGISTRY))}), a cnn.losses.Loss or one of the functions "
                            f"cnn.losses.{', cnn.losses.'.join(sorted(_FUNCTIONS.values()))}")
        return _REGISTRY[_FUNCTIONS[loss]]()
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a loss name or a cnn.losses.Loss, got {type(loss).__name__}: {loss!r}")
    key = _ALIASES.get(loss, loss)
    if key not in _REGISTRY:
        raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(sorted(_REGISTRY) + sorted(_ALIASES))}")
    return _REGISTRY[key]()
