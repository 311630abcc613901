"""Metrics with Keras 3's names and definitions: functions of (y_true, y_pred) giving one value per sample,
and stateful classes (update_state, result, reset_state) that compile(metrics=...) accumulates over batches.

Definitions, as Keras 3 states them (keras/src/metrics):
- mean metrics (mae, mse, the accuracies) average the per-sample values; with sample_weight, the weighted
  mean Σ w·v / Σ w;
- binary_accuracy: y_pred > threshold (0.5) equals y_true, averaged over the last axis;
- categorical_accuracy: argmax(y_true) == argmax(y_pred); sparse_: the label == argmax(y_pred);
- top_k_categorical_accuracy (k=5): the true class's score is >= the k-th largest score (a tie at the
  boundary counts as a hit, as keras.ops.in_top_k);
- Precision, Recall: y_pred > threshold (0.5) against y_true != 0 over every element, tp / (tp + fp) and
  tp / (tp + fn), 0 when the denominator is 0; top_k=k counts only the k largest along the last axis;
- AUC: confusion counts at num_thresholds (200) thresholds, 0 - 1e-7, i/(num_thresholds - 1) for
  i = 1..num_thresholds-2, and 1 + 1e-7, a prediction counting as positive when strictly above one; ROC
  by the trapezoid rule over (fpr, tpr), PR by Davis & Goadrich's interpolation (Keras' default
  summation_method='interpolation').
Values are computed in float64 and returned as Python floats."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

import numpy as np

from ._validation import check_choice, check_number

if TYPE_CHECKING:
    from ._types import ArrayLike

__all__ = ["Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
           "MeanAbsoluteError", "MeanSquaredError", "Precision", "Recall", "AUC", "binary_accuracy",
           "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "mean_absolute_error", "mean_squared_error", "mae", "mse", "get"]

EPSILON = 1e-7  # Keras' backend.epsilon(): the AUC's end thresholds
NEG_INF = -1e10  # Keras' metrics_utils.NEG_INF: a top_k-filtered prediction, and the threshold that goes with top_k


def _arrays(y_true, y_pred):
    return np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)


def _labels(y_true, n):
    """Sparse labels as a flat int array of n entries ((N,) or (N, 1) accepted)."""
    return np.asarray(y_true).reshape(n).astype(np.int64)


def binary_accuracy(y_true: ArrayLike, y_pred: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean(y_true.reshape(y_pred.shape) == (y_pred > threshold), axis=-1)


# the accuracies compare in the arrays' own dtypes: an argmax needs no float64 copy (fit calls them every step)
def categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    return (np.asarray(y_true).argmax(axis=-1) == np.asarray(y_pred).argmax(axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return (np.asarray(y_true).reshape(y_pred.shape[0]) == y_pred.argmax(axis=-1)).astype(np.float64)


def sparse_top_k_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike, k: int = 5) -> np.ndarray:
    y_pred = np.asarray(y_pred, np.float64)
    labels = _labels(y_true, y_pred.shape[0])
    target = y_pred[np.arange(len(y_pred)), labels]
    return (np.count_nonzero(y_pred > target[:, None], axis=-1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike, k: int = 5) -> np.ndarray:
    return sparse_top_k_categorical_accuracy(np.asarray(y_true).argmax(axis=-1), y_pred, k)


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean(np.abs(y_true.reshape(y_pred.shape) - y_pred), axis=-1)


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    y_true, y_pred = _arrays(y_true, y_pred)
    return np.mean((y_true.reshape(y_pred.shape) - y_pred) ** 2, axis=-1)


mae, mse = mean_absolute_error, mean_squared_error


def _snake(name):
    """Keras' to_snake_case: 'MeanSquaredError' -> 'mean_squared_error', 'AUC' -> 'auc'."""
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


class Metric:
    """The stateful protocol: update_state(y_true, y_pred, sample_weight=None), result(), reset_state().
    Each class keeps its constructor arguments as attributes of the same names (what saving records).

    `direction` says whether a larger value is better ('up') or worse ('down'), for EarlyStopping's mode='auto'."""

    direction = "up"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or _snake(type(self).__name__)
        self.reset_state()

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """The metric of this batch alone (the state is reset first), as a Keras metric's standalone use."""
        self.reset_state()
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def _weights(sample_weight, n):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, np.float64)
    if w.ndim > 1 and w.shape[-1] == 1:
        w = w.reshape(w.shape[:-1])
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), one weight per sample, got {w.shape}")
    return w


class Mean(Metric):
    """The (weighted) mean of the values given to update_state(values, sample_weight=None)."""

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        """values: one per sample, or rows averaged to one per sample."""
        values = np.asarray(values, np.float64)
        if values.ndim != 1:
            values = values.reshape(len(values), -1).mean(axis=1)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += len(values)
        else:
            w = _weights(sample_weight, len(values))
            self.total += float((values * w).sum())
            self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The mean over samples of fn(y_true, y_pred, **kwargs), one value per sample."""

    def __init__(self, fn: Callable, name: str | None = None, direction: str = "up", **kwargs) -> None:
        self.fn, self.kwargs, self.direction = fn, kwargs, direction
        super().__init__(name or fn.__name__)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.fn(y_true, y_pred, **self.kwargs), sample_weight)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5) -> None:
        self.threshold = float(check_number(threshold, "threshold"))
        super().__init__(binary_accuracy, name, threshold=self.threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "categorical_accuracy") -> None:
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "sparse_categorical_accuracy") -> None:
        super().__init__(sparse_categorical_accuracy, name)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy") -> None:
        self.k = check_number(k, "k", low=1, integer=True)
        super().__init__(top_k_categorical_accuracy, name, k=self.k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy") -> None:
        self.k = check_number(k, "k", low=1, integer=True)
        super().__init__(sparse_top_k_categorical_accuracy, name, k=self.k)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_absolute_error") -> None:
        super().__init__(mean_absolute_error, name, direction="down")


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_squared_error") -> None:
        super().__init__(mean_squared_error, name, direction="down")


class _Confusion(Metric):
    """True/false positive/negative weights at each threshold, over every element of y_pred (or the
    class_id column, or each row's top_k entries), as keras.metrics' update_confusion_matrix_variables."""

    def __init__(self, cuts, name=None, top_k=None, class_id=None):
        self._cuts = np.asarray(cuts, np.float64)
        self.top_k = None if top_k is None else check_number(top_k, "top_k", low=1, integer=True)
        self.class_id = None if class_id is None else check_number(class_id, "class_id", low=0, integer=True)
        super().__init__(name)

    def reset_state(self) -> None:
        self.tp, self.fp, self.tn, self.fn = (np.zeros(len(self._cuts)) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _arrays(y_true, y_pred)
        if self.top_k is not None:  # all but the k largest along the last axis (the first k of ties) drop to -1e10
            top = np.argsort(-y_pred, axis=-1, kind="stable")[..., :self.top_k]
            kept = np.full_like(y_pred, NEG_INF)
            np.put_along_axis(kept, top, np.take_along_axis(y_pred, top, axis=-1), axis=-1)
            y_pred = kept
        y_pred = y_pred.reshape(len(y_pred), -1)
        y_true = y_true.reshape(y_pred.shape)
        w = _weights(sample_weight, len(y_pred))
        w = np.ones_like(y_pred) if w is None else np.broadcast_to(w[:, None], y_pred.shape)
        if self.class_id is not None:
            if self.class_id >= y_pred.shape[1]:
                raise ValueError(f"class_id {self.class_id} is out of range for {y_pred.shape[1]} outputs")
            y_true, y_pred, w = (a[:, self.class_id] for a in (y_true, y_pred, w))
        positive, pred, w = (y_true != 0).ravel(), y_pred.ravel(), w.ravel()
        # above[j] = weight of predictions strictly above thresholds[j], split by the true label
        rank = np.searchsorted(np.sort(self._cuts), pred, side="left")  # thresholds below each prediction
        order = np.argsort(self._cuts, kind="stable")
        for is_pos, hit, miss in ((True, self.tp, self.fn), (False, self.fp, self.tn)):
            sel = positive == is_pos
            counts = np.bincount(rank[sel], w[sel], minlength=len(self._cuts) + 1)
            above = counts[::-1].cumsum()[::-1][1:]  # above[j]: rank > j
            hit[order] += above
            miss[order] += w[sel].sum() - above

    @staticmethod
    def _ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den != 0)

    def _single(self, values):
        return float(values[0]) if self._one else [float(v) for v in values]


class Precision(_Confusion):
    def __init__(self, thresholds: float | list[float] | None = None, top_k: int | None = None,
                 class_id: int | None = None, name: str | None = None) -> None:
        self.thresholds = thresholds if thresholds is None or np.ndim(thresholds) == 0 else list(thresholds)
        self._one = thresholds is None or np.ndim(thresholds) == 0
        default = 0.5 if top_k is None else NEG_INF
        super().__init__([default] if thresholds is None else np.atleast_1d(thresholds), name, top_k, class_id)

    def result(self) -> float | list[float]:
        return self._single(self._ratio(self.tp, self.tp + self.fp))


class Recall(Precision):
    def result(self) -> float | list[float]:
        return self._single(self._ratio(self.tp, self.tp + self.fn))


class AUC(_Confusion):
    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str | None = None, thresholds: list[float] | None = None, from_logits: bool = False) -> None:
        self.curve = check_choice(curve.upper() if isinstance(curve, str) else curve, "curve", ("ROC", "PR"))
        self.summation_method = check_choice(summation_method, "summation_method",
                                             ("interpolation", "minoring", "majoring"))
        self.from_logits = bool(from_logits)
        self.thresholds = None if thresholds is None else sorted(float(t) for t in thresholds)
        if thresholds is not None:
            inner = self.thresholds
        else:
            num_thresholds = check_number(num_thresholds, "num_thresholds", low=2, integer=True)
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.num_thresholds = len(inner) + 2
        super().__init__([0.0 - EPSILON] + inner + [1.0 + EPSILON], name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            y_pred = 1 / (1 + np.exp(-np.asarray(y_pred, np.float64)))
        super().update_state(y_true, y_pred, sample_weight)

    def result(self) -> float:
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr()
        recall = self._ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = self._ratio(fp, fp + tn), recall
        else:
            x, y = recall, self._ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def _interpolated_pr(self):
        """Davis & Goadrich 2006: tp and the predicted positives p vary linearly between thresholds, and
        precision = tp / p is integrated in closed form over each interval (Keras' interpolate_pr_auc)."""
        tp, fp, fn = self.tp, self.fp, self.fn
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = self._ratio(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, self._ratio(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return float(np.sum(self._ratio(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))))


_CLASSES = {"binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
            "sparse_categorical_accuracy": SparseCategoricalAccuracy,
            "top_k_categorical_accuracy": TopKCategoricalAccuracy,
            "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
            "mean_absolute_error": MeanAbsoluteError, "mean_squared_error": MeanSquaredError,
            "precision": Precision, "recall": Recall, "auc": AUC}
_ALIASES = {"mae": "mean_absolute_error", "mse": "mean_squared_error"}
_FUNCTIONS = {binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
              sparse_categorical_accuracy: SparseCategoricalAccuracy,
              top_k_categorical_accuracy: TopKCategoricalAccuracy,
              sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy,
              mean_absolute_error: MeanAbsoluteError, mean_squared_error: MeanSquaredError}
ACCURACY = ("accuracy", "acc")  # resolved by the model from its loss and output (see Sequential.compile)


def accuracy_for(sparse: bool, outputs: int, name: str) -> Metric:
    """What 'accuracy' means for a model, as Keras 3 decides: sparse labels -> sparse_categorical_accuracy,
    one output -> binary_accuracy, else categorical_accuracy; logged under the name given."""
    if sparse:
        return SparseCategoricalAccuracy(name)
    return BinaryAccuracy(name) if outputs == 1 else CategoricalAccuracy(name)


def get(metric: str | Callable | Metric) -> Metric:
    """A fresh Metric from a name ('mae', 'precision', 'auc', ...), one of this module's functions (logged
    under the function's name) or a Metric (passed through). 'accuracy' is resolved by the model."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        key = _ALIASES.get(metric, metric)
        if key not in _CLASSES:
            raise ValueError(f"unknown metric {metric!r}; valid names: "
                             f"{', '.join(sorted(list(_CLASSES) + list(_ALIASES) + list(ACCURACY)))}")
        return _CLASSES[key](name=metric)
    if callable(metric) and metric in _FUNCTIONS:
        return _FUNCTIONS[metric](name=metric.__name__)
    raise TypeError(f"a metric must be a name such as 'accuracy' or 'mae', a cnn.metrics function or a "
                    f"cnn.metrics.Metric, got {type(metric).__name__}: {metric!r}")
