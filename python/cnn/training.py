"""Training for every cnn model: compile, fit, evaluate, predict, train_on_batch, test_on_batch.

`Trainer` is a mixin; the model class provides the structure it drives: `layers`, the flat `_params` and
`_grads` buffers, `_rng`, `_lock`, `_commit`, `output_shape`, and `_prepare_inputs(x)`,
`_forward(x, training, logits)`, `_backward(dout)` and `_fused()`. Inputs and targets are an array each for
a model of one input and one output (Sequential), else lists of arrays, one per input or output; such a
model (cnn.functional) also gives `_targets`, `_empty_outputs`, `_predicted`, `_loss_value`,
`_metric_outputs` and `_metric_views`. A softmax (or sigmoid) output layer followed by a cross-entropy loss
is trained from its logits in one fused step.

Keras 3's signatures: compile(optimizer, loss, loss_weights, metrics, weighted_metrics, ...), fit with
class_weight, sample_weight, steps_per_epoch, validation_freq, evaluate/predict with progress bars, and
model(x). Weighted samples follow Keras: the loss is Σ w·loss / batch size (the gradient of each sample's
loss is scaled by its weight), `weighted_metrics` are Σ w·value / Σ w and `metrics` ignore the weights.
Metrics see the model's outputs as predict gives them (probabilities after a fused softmax or sigmoid).

compile's third positional argument is loss_weights, as in Keras 3. cnn's earlier compile(optimizer, loss,
metrics) took metrics there, and that code keeps working: loss weights are numbers, so a list of metric names,
functions or Metric objects in that place can only be metrics and is taken as such (given together with
metrics=, it raises TypeError).

Non-finite values. A batch whose loss is not finite is not applied; fit raises FloatingPointError (unless
a callback such as TerminateOnNaN stops training and the weights are finite). A step whose loss was
finite can still make weights non-finite (an overflowing step, or a NaN that a saturating activation
hides from the loss); such a step is applied, not undone: undoing needs a copy of every weight per step,
and checking the weights after every step costs a pass over them (about 110 us, 3-4% of a 784-500-500-10
step at batch 50; 0.3% of a LeNet-5 step). Instead fit checks the weights (one pass over the flat
buffer) before training, at the end of every epoch before validation and callbacks see them, and
whenever a loss is not finite; train_on_batch checks them after its step. Every FloatingPointError
says whether the weights are finite and, if not, which layers hold NaN or infinity."""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import _core, distributed
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from ._contention import ThreadCap
from ._interrupt import deferring_interrupts
from ._locking import locked
from ._validation import INT_MAX, as_float_array, check_list, check_number
from .callbacks import Callback, CallbackList, History, ModelCheckpoint
from .progress import ProgbarLogger

if TYPE_CHECKING:
    from ._types import ArrayLike, Verbose
    from .losses import Loss
    from .metrics import Metric
    from .optimizers import Optimizer

__all__ = ["Trainer"]

_FINITE_CHUNK = 16384  # weights per isfinite call: a training step allocates no weight-sized temporary


def _batch_size(value, name="batch_size"):
    """32 (Keras' default) for None, else a positive int that the kernels' int holds."""
    return 32 if value is None else check_number(value, name, low=1, high=INT_MAX, integer=True)


def _count(data):
    """The rows of inputs or targets: an array, or a list of arrays (one per model input or output)."""
    return len(data[0]) if type(data) is list else len(data)


def _rows(data, start, stop):
    return [d[start:stop] for d in data] if type(data) is list else data[start:stop]


def _gather(data, index, out):
    """out[i] = data[index[i]] for an array or each array of a list; mode='clip' (the indices are a permutation)
    lets take write straight into out, mode='raise' would gather into a temporary first."""
    for d, o in zip(data, out) if type(data) is list else ((data, out),):
        d.take(index, axis=0, out=o, mode="clip")


def _row_buffers(data, m):
    if type(data) is list:
        return [np.empty((m,) + d.shape[1:], d.dtype) for d in data]
    return np.empty((m,) + data.shape[1:], data.dtype)


def _sample_weighted(loss, out, y, fused, grad, sample_weight, weight):
    """One output's loss and output gradient (None without grad) with the sample weights (Σ w·loss / n, each
    sample's gradient times its weight) and its loss weight applied."""
    value, dout = loss(out, y, logits=fused, grad=grad)
    if sample_weight is not None:
        value = float(np.mean(sample_weight * loss.per_sample(y, out, logits=fused)))
        if dout is not None:
            dout *= sample_weight.astype(dout.dtype).reshape((-1,) + (1,) * (dout.ndim - 1))
    if weight != 1.0:
        value *= weight
        if dout is not None:
            dout *= dout.dtype.type(weight)
    return value, dout


def _verbose(value):
    if value not in ("auto", 0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {value!r}")
    return 1 if value == "auto" else value


def _steps(value, name):
    return None if value is None else check_number(value, name, low=1, integer=True)


def _metric_specs(metrics, name):
    """The metrics compile was given: names (a cnn.metrics function becomes its name) and Metric objects."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, metrics_mod.Metric)) or callable(metrics):
        raise TypeError(f"{name} must be a list, such as ['accuracy'], got {metrics!r}")
    specs = []
    for m in check_list(metrics, name, object, "metric names, cnn.metrics functions or Metric objects"):
        if callable(m) and not isinstance(m, metrics_mod.Metric):
            metrics_mod.get(m)  # a function cnn does not know raises here, naming what it accepts
            m = m.__name__
        elif isinstance(m, str) and m not in metrics_mod.ACCURACY:
            metrics_mod.get(m)
        elif not isinstance(m, (str, metrics_mod.Metric)):
            metrics_mod.get(m)
        specs.append(m)
    return specs


def _loss_weights_and_metrics(loss_weights, metrics):
    """compile's (loss_weights, metrics): a third positional argument that is a list of names, functions or
    Metric objects is cnn's earlier positional metrics (no loss weight can be one), so it moves to metrics."""
    earlier = isinstance(loss_weights, (list, tuple)) and len(loss_weights) > 0 and all(
        isinstance(v, (str, metrics_mod.Metric)) or callable(v) for v in loss_weights)
    if not earlier:
        return loss_weights, metrics
    if metrics is not None:
        raise TypeError(f"compile's third argument is loss_weights (Keras 3's order), got the metrics "
                        f"{loss_weights!r} there as well as metrics={metrics!r}; pass the metrics once, by keyword")
    return None, loss_weights


def _loss_weight(loss_weights):
    """The factor on the loss (the model has one output): a number, or a list or dict holding one."""
    if loss_weights is None:
        return 1.0
    items = loss_weights if isinstance(loss_weights, (list, tuple)) else (
        list(loss_weights.values()) if isinstance(loss_weights, dict) else [loss_weights])
    if len(items) != 1:
        raise ValueError(f"loss_weights must be one number (the model has one output), got {loss_weights!r}")
    return float(check_number(items[0], "loss_weights", low=0))


class _Batches:
    """(start, stop, order) of each batch: one pass over the n rows per epoch, or, with steps_per_epoch, a
    stream that carries on across epochs and begins a new pass (a new shuffle) when one ends, as Keras 3's
    epoch iterator does with arrays. A pass draws its permutation from the model's generator when its first
    batch is taken."""

    def __init__(self, rng, n, batch_size, shuffle, dist=None):
        self.rng, self.n, self.batch_size, self.shuffle, self.dist = rng, n, batch_size, shuffle, dist
        # cnn.distributed: a pass takes the steps of the rank with the most batches; where this rank's rows ran
        # out, start >= n (fit steps on a stand-in row)
        self.steps = -(-n // batch_size) if dist is None else dist.steps
        self.passes = self._passes()

    def _passes(self):
        while True:
            order = None
            if self.shuffle:  # cnn.distributed: the same permutation on every rank, cut to this rank's rows
                order = self.rng.permutation(self.n) if self.dist is None else self.dist.permutation(self.rng)
            for step in range(self.steps):
                start = step * self.batch_size
                yield start, min(start + self.batch_size, self.n), order

    def epoch(self, steps):
        if steps is None:  # a whole pass, from its beginning
            self.passes = self._passes()
            steps = self.steps
        for _ in range(steps):
            yield next(self.passes)


class Trainer:
    """compile/fit/evaluate/predict over the structure a model class provides (see the module docstring)."""

    @locked
    def compile(self, optimizer: str | Optimizer = "adam", loss: str | Loss | None = None,
                loss_weights: float | None = None, metrics: Sequence[str | Metric] | None = None,
                weighted_metrics: Sequence[str | Metric] | None = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: str | bool = "auto", auto_scale_loss: bool = True) -> None:
        """Keras 3's compile. metrics and weighted_metrics take names ('accuracy', 'mae', 'auc', ...),
        cnn.metrics functions and Metric objects; 'accuracy' means binary, categorical or sparse categorical
        accuracy as the loss and the output say. run_eagerly, steps_per_execution, jit_compile and
        auto_scale_loss are accepted for Keras code and change nothing: cnn runs eagerly, one step per call,
        in the model's dtype."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
        loss_weights, metrics = _loss_weights_and_metrics(loss_weights, metrics)  # compile(opt, loss, ['accuracy'])
        weight = _loss_weight(loss_weights)
        check_number(steps_per_execution, "steps_per_execution", low=1, integer=True)
        optimizer, loss = optimizers_mod.get(optimizer), losses_mod.get(loss)
        self.metrics = _metric_specs(metrics, "metrics")
        self.weighted_metrics = _metric_specs(weighted_metrics, "weighted_metrics")
        self.optimizer, self.loss, self.loss_weights, self._loss_weight = optimizer, loss, loss_weights, weight
        self.compiled_metrics = []

    def _make_metrics(self):
        """[(Metric, weighted, output index)] from compile's specs, reset; also kept as self.compiled_metrics.
        Each spec applies to every output, its name prefixed by the output's ('<output layer>_accuracy') when
        there are several; repeated names get _1, _2, ... as in Keras."""
        if not self.metrics and not self.weighted_metrics:  # the common case, kept off the per-step path
            self.compiled_metrics = []
            return []
        outputs = self._metric_outputs()
        pairs, seen = [], {}
        for specs, weighted in ((self.metrics, False), (self.weighted_metrics, True)):
            for spec in specs:
                for index, (prefix, loss, size) in enumerate(outputs):
                    if isinstance(spec, str) and spec in metrics_mod.ACCURACY:
                        metric = metrics_mod.accuracy_for(loss.sparse, size, spec)
                    else:
                        metric = metrics_mod.get(spec)
                    metric.name = prefix + metric.name
                    count = seen.get(metric.name, 0)
                    seen[metric.name] = count + 1
                    if count:
                        metric.name = f"{metric.name}_{count}"
                    metric.reset_state()
                    pairs.append((metric, weighted, index))
        self.compiled_metrics = [m for m, _, _ in pairs]
        return pairs

    def _metric_outputs(self):
        """(name prefix, loss, values per sample) of each output the metrics watch."""
        return [("", self.loss, math.prod(self.output_shape))]

    def _metric_views(self, out, y, fused):
        """[(targets, outputs as predict gives them)] of each output, for the metrics."""
        return [(y, self.layers[-1].activation.forward(out) if fused else out)]

    def _update_metrics(self, pairs, out, y, fused, sample_weight):
        if not pairs:
            return
        views = self._metric_views(out, y, fused)
        for metric, weighted, index in pairs:
            metric.update_state(*views[index], sample_weight if weighted else None)

    @staticmethod
    def _logs(loss, pairs, prefix=""):
        logs = {prefix + "loss": float(loss)}
        logs.update({prefix + metric.name: metric.result() for metric, _, _ in pairs})
        return logs

    # ---- fit ---------------------------------------------------------------------------------

    @locked
    @deferring_interrupts
    def fit(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
            epochs: int = 1, verbose: Verbose = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: tuple | None = None, shuffle: bool = True,
            class_weight: dict[int, float] | None = None, sample_weight: ArrayLike | None = None,
            initial_epoch: int = 0, steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int | Sequence[int] = 1) -> History:
        """Train for epochs initial_epoch..epochs-1; returns a History (also kept as model.history).

        Per-batch logs hold the running means of the epoch so far ('loss', and each metric); epoch logs add
        'val_loss' and 'val_<metric>' on the epochs validation_freq selects (every n-th, or those listed,
        counted from 1). steps_per_epoch=s makes an epoch s batches of a stream that carries on across
        epochs. validation_data may be (x_val, y_val) or (x_val, y_val, sample_weight_val)."""
        self._check_compiled()
        batch_size, verbose = _batch_size(batch_size), _verbose(verbose)
        val_batch_size = _batch_size(validation_batch_size or batch_size, "validation_batch_size")
        check_number(epochs, "epochs", low=0, integer=True)
        check_number(initial_epoch, "initial_epoch", low=0, integer=True)
        check_number(validation_split, "validation_split", low=0, high=1, high_open=True)
        steps_per_epoch, validation_steps = _steps(steps_per_epoch, "steps_per_epoch"), _steps(validation_steps,
                                                                                                "validation_steps")
        validate_on = self._validation_epochs(validation_freq)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("pass class_weight or sample_weight, not both (Keras refuses both too)")
        x, y = self._prepare(x, y)
        sample_weight = self._sample_weight(sample_weight, _count(x))
        x, y, sample_weight, val = self._validation_arrays(x, y, sample_weight, validation_split, validation_data)
        if class_weight is not None:
            sample_weight = self._class_sample_weights(class_weight, y)
        callbacks = check_list(callbacks, "callbacks", Callback, "cnn.callbacks.Callback instances")
        bad = self._non_finite_weights()
        if bad is not None:
            raise ValueError(f"the model's weights hold NaN or infinity before training ({bad}); "
                             "set finite weights with set_weights or rebuild the model")
        pairs = self._make_metrics()
        # ---- cnn.distributed: with a DistributedOptimizer on several ranks, every rank takes the same steps
        dist = distributed._fit_plan(self, _count(x), batch_size)  # None otherwise; broadcasts rank 0's weights
        if dist is not None and dist.group.rank:  # only rank 0 prints and saves
            verbose, callbacks = 0, [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
        # ---- end cnn.distributed
        history = History()
        batches = _Batches(self._rng, _count(x), batch_size, shuffle, dist)
        cbs = CallbackList(([ProgbarLogger(verbose)] if verbose else []) + callbacks + [history], self,
                           {"verbose": verbose, "epochs": epochs, "steps": steps_per_epoch or batches.steps})
        threads = ThreadCap()  # fewer threads while other processes keep cores busy (cnn._contention)
        try:
            self.stop_training = False
            cbs.on_train_begin()
            logs = {}
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                logs = self._fit_epoch(epoch, x, y, sample_weight, batches, steps_per_epoch, pairs, cbs, threads,
                                       dist)
                if dist is not None:
                    dist.end_epoch(self)
                self._check_weights(f"after epoch {epoch}", "they were finite when fit began, so a step in this epoch "
                                    "overflowed and an activation kept the result out of the loss")
                if val is not None and validate_on(epoch + 1):
                    cbs.on_test_begin()
                    val_logs = self._evaluate_arrays(*val, val_batch_size, pairs, cbs, validation_steps, threads)
                    if dist is not None:  # cnn.distributed: every rank's validation rows
                        val_logs = dist.evaluation(val_logs["loss"], pairs, _count(val[0]) if validation_steps is None
                                                   else min(_count(val[0]), validation_steps * val_batch_size))
                    cbs.on_test_end(val_logs)
                    logs.update({"val_" + k: v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            threads.close()
            if dist is not None:
                dist.end()
        self.history = history
        return history

    def _fit_epoch(self, epoch, x, y, sample_weight, batches, steps_per_epoch, pairs, cbs, threads, dist=None):
        """One epoch of steps over (x, y); returns the last batch's logs (the epoch's running means). With dist
        (cnn.distributed) the steps, the permutation, the loss and the metrics are the ranks' together."""
        fused, rows = self._fused(), min(batches.batch_size, _count(x))
        if batches.shuffle:  # shuffled batches are gathered into buffers reused across steps
            xbuf, ybuf = _row_buffers(x, rows), _row_buffers(y, rows)
        total, seen, logs = 0.0, 0, {}
        for metric, _, _ in pairs:
            metric.reset_state()
        for step, (start, stop, order) in enumerate(batches.epoch(steps_per_epoch)):
            if dist is not None and not dist.begin_step(start // batches.batch_size):  # cnn.distributed: this
                start, stop = 0, 1  # rank's rows ran out; it steps on a stand-in row at weight 0
            sw = None
            if order is not None:
                xb, yb = _rows(xbuf, 0, stop - start), _rows(ybuf, 0, stop - start)
                _gather(x, order[start:stop], xb)
                _gather(y, order[start:stop], yb)
                if sample_weight is not None:
                    sw = sample_weight[order[start:stop]]
            else:
                xb, yb = _rows(x, start, stop), _rows(y, start, stop)
                if sample_weight is not None:
                    sw = sample_weight[start:stop]
            cbs.on_train_batch_begin(step)
            value, out = self._train_step(xb, yb, fused, sw, dist)
            rows = stop - start if dist is None else dist.rows
            seen += rows
            total += value * rows
            if math.isfinite(value) and (dist is None or dist.count):  # a stand-in row counts in no metric
                self._update_metrics(pairs, out, yb, fused, sw)
            logs = self._logs(total / seen, pairs if dist is None else dist.metrics(pairs))
            cbs.on_train_batch_end(step, logs)
            self._commit.end()
            threads.tick()
            if not math.isfinite(value):
                bad = self._non_finite_weights()
                if bad is not None or not self.stop_training:  # a callback may stop on a NaN loss, not weights
                    raise self._loss_error(value, f"batch {step} of epoch {epoch}", bad)
                break
            if self.stop_training:
                break
        return logs

    def _loss_value(self, out, y, fused, grad, sample_weight):
        """(loss, gradient w.r.t. the output or None without grad) with the sample weights and compile's
        loss_weights applied."""
        return _sample_weighted(self.loss, out, y, fused, grad, sample_weight, self._loss_weight)

    def _train_step(self, x, y, fused, sample_weight=None, dist=None):
        """One gradient step on a batch; returns (loss, the output it was computed from). A non-finite loss
        skips the update. With dist (cnn.distributed) the loss is the global batch's, and every rank decides on
        it alike."""
        out = self._forward(x, training=True, logits=fused)
        value, dout = self._loss_value(out, y, fused, True, sample_weight)
        self._backward(dout)
        value += self._penalty(grad=True)  # after backward: Dense and Conv2D overwrite their gradients
        if dist is not None:
            value = dist.batch(value)
        if not math.isfinite(value):
            return value, out
        self._commit.begin()  # ended by the caller once the batch is recorded
        self.optimizer.step(self._params[:self._grads.size], self._grads)  # the trainable prefix
        return value, out

    @staticmethod
    def _validation_epochs(validation_freq):
        """Whether to validate after epoch e (counted from 1): every n-th epoch, or those listed (Keras)."""
        if isinstance(validation_freq, numbers.Integral) and not isinstance(validation_freq, bool):
            n = check_number(validation_freq, "validation_freq", low=1, integer=True)
            return lambda e: e % n == 0
        if isinstance(validation_freq, (list, tuple, set, range)):
            listed = {check_number(e, "validation_freq's epochs", low=1, integer=True) for e in validation_freq}
            return listed.__contains__
        raise TypeError(f"validation_freq must be an integer or a list of epochs, got {validation_freq!r}")

    def _sample_weight(self, sample_weight, n, name="sample_weight"):
        """Per-sample weights as float64 (n,), finite and >= 0; None stays None."""
        if sample_weight is None:
            return None
        w = as_float_array(sample_weight, name, np.float64)
        if w.ndim == 2 and w.shape[1] == 1:
            w = w[:, 0]
        if w.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), one weight per sample, got {w.shape}")
        if w.min() < 0:
            raise ValueError(f"{name} must be >= 0, got {w.min()}")
        return w

    def _class_sample_weights(self, class_weight, y):
        """Keras' class_weight as sample weights: each sample gets its class's weight (1 for a class not
        listed); the class is the label, the argmax of a one-hot row, or the rounded single output. A model of
        several outputs refuses it, as Keras does."""
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict mapping class indices to weights, got "
                            f"{type(class_weight).__name__}")
        if type(y) is list:
            if len(y) > 1:
                raise ValueError(f"class_weight is not supported for a model of {len(y)} outputs (Keras refuses it "
                                 "too); pass sample_weight instead")
            y = y[0]
        if self.loss.sparse:
            classes = y
        else:
            rows = y.reshape(len(y), -1)
            classes = rows.argmax(axis=1) if rows.shape[1] > 1 else np.round(rows[:, 0]).astype(np.int64)
        weights = np.ones(len(y))
        for key, value in class_weight.items():
            if isinstance(key, bool) or not isinstance(key, numbers.Integral):
                raise TypeError(f"class_weight keys must be integer class indices, got {key!r}")
            weights[classes == key] = check_number(value, f"class_weight[{key}]", low=0)
        return weights

    def _validation_arrays(self, x, y, sample_weight, validation_split, validation_data):
        """(x, y, sample_weight, validation): validation_data as given, else the last fraction of the rows
        (and of the weights), taken before any shuffling (Keras' train_validation_split); validation is
        (x_val, y_val, weights or None), or None."""
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)")
            x_val, y_val = self._prepare(*validation_data[:2])
            w_val = self._sample_weight(validation_data[2], _count(x_val), "validation_data's sample_weight") \
                if len(validation_data) == 3 else None
            return x, y, sample_weight, (x_val, y_val, w_val)
        if not validation_split:
            return x, y, sample_weight, None
        n = _count(x)
        split = int(np.floor(n * (1 - validation_split)))
        if split in (0, n):
            raise ValueError(f"validation_split={validation_split} leaves no samples for training or "
                             f"validation out of {n}")
        w_train, w_val = (None, None) if sample_weight is None else (sample_weight[:split], sample_weight[split:])
        return _rows(x, 0, split), _rows(y, 0, split), w_train, (_rows(x, split, n), _rows(y, split, n), w_val)

    # ---- one batch ---------------------------------------------------------------------------

    @locked
    @deferring_interrupts
    def train_on_batch(self, x: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                       class_weight: dict[int, float] | None = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One optimizer step on (x, y); returns the loss, or [loss, metrics...] when compiled with metrics
        (the metrics of this batch alone, as Keras 2's reset_metrics=True)."""
        self._check_compiled()
        if class_weight is not None and sample_weight is not None:
            raise ValueError("pass class_weight or sample_weight, not both (Keras refuses both too)")
        x, y = self._prepare(x, y)
        if sample_weight is not None:
            sample_weight = self._sample_weight(sample_weight, _count(x))
        elif class_weight is not None:
            sample_weight = self._class_sample_weights(class_weight, y)
        pairs, fused = self._make_metrics(), self._fused()
        value, out = self._train_step(x, y, fused, sample_weight)
        self._commit.end()
        if not math.isfinite(value):
            raise self._loss_error(value, "this batch", self._non_finite_weights())
        self._check_weights("after this batch's step, which was applied",
                            "either the step overflowed, or the weights held them before this call and an "
                            "activation kept them out of the loss")
        if not pairs and not return_dict:  # the loss alone, without building the logs (_results' answer)
            return float(value)
        self._update_metrics(pairs, out, y, fused, sample_weight)
        return self._results(self._logs(value, pairs), return_dict)

    @locked
    def test_on_batch(self, x: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss on (x, y) in inference mode, or [loss, metrics...] when compiled with metrics."""
        self._check_compiled()
        x, y = self._prepare(x, y)
        n = _count(x)
        logs = self._evaluate_arrays(x, y, self._sample_weight(sample_weight, n), n, self._make_metrics())
        return self._results(logs, return_dict)

    def _results(self, logs, return_dict):
        """Keras' return value: the logs as a dict, the loss alone, or [loss, metric, ...]."""
        if return_dict:
            return logs
        return list(logs.values()) if len(logs) > 1 else logs["loss"]

    # ---- inference ---------------------------------------------------------------------------

    @locked
    def __call__(self, x: ArrayLike, training: bool = False) -> np.ndarray:
        """The outputs for x in one pass, as Keras' model(x): predict without batches, callbacks or progress;
        training=True runs the layers as in training (dropout on)."""
        out = self._forward(self._prepare_inputs(x), training=bool(training), logits=False)
        return self._predicted([o.copy() for o in out]) if type(out) is list else out.copy()

    @locked
    def evaluate(self, x: ArrayLike, y: ArrayLike, batch_size: int | None = None, verbose: Verbose = "auto",
                 sample_weight: ArrayLike | None = None, steps: int | None = None,
                 callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss (and metrics) over (x, y) in inference mode (dropout off); a progress bar at verbose=1
        ('auto'), one line at 2. steps=s evaluates the first s batches only."""
        self._check_compiled()
        verbose = _verbose(verbose)
        x, y = self._prepare(x, y)
        n = _count(x)
        sample_weight = self._sample_weight(sample_weight, n)
        batch_size, steps = _batch_size(batch_size), _steps(steps, "steps")
        callbacks = check_list(callbacks, "callbacks", Callback, "cnn.callbacks.Callback instances")
        cbs = CallbackList(([ProgbarLogger(verbose)] if verbose else []) + callbacks, self,
                           {"verbose": verbose, "epochs": 1, "steps": min(steps or INT_MAX, -(-n // batch_size))})
        cbs.on_test_begin()
        threads = ThreadCap()  # as in fit: fewer threads while other processes keep cores busy
        try:
            logs = self._evaluate_arrays(x, y, sample_weight, batch_size, self._make_metrics(), cbs, steps, threads)
        finally:
            threads.close()
        cbs.on_test_end(logs)
        return self._results(logs, return_dict)

    def _evaluate_arrays(self, x, y, sample_weight, batch_size, pairs, cbs=None, steps=None, threads=None):
        """The logs (mean loss + penalty, and each metric) over x, or its first `steps` batches, in inference
        mode; threads (a ThreadCap) is ticked every batch."""
        fused = self._fused()
        n = _count(x) if steps is None else min(_count(x), steps * batch_size)
        total = 0.0
        for metric, _, _ in pairs:
            metric.reset_state()
        for step, start in enumerate(range(0, n, batch_size)):
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            if threads is not None:
                threads.tick()
            stop = min(start + batch_size, n)
            xb, yb = _rows(x, start, stop), _rows(y, start, stop)
            sw = None if sample_weight is None else sample_weight[start:stop]
            out = self._forward(xb, training=False, logits=fused)
            value, _ = self._loss_value(out, yb, fused, False, sw)
            total += value * (stop - start)
            self._update_metrics(pairs, out, yb, fused, sw)
            if cbs is not None:
                cbs.on_test_batch_end(step, self._logs(total / stop, pairs))
        return self._logs(total / n + self._penalty(grad=False), pairs)

    @locked
    def predict(self, x: ArrayLike, batch_size: int | None = None, verbose: Verbose = "auto",
                steps: int | None = None, callbacks: Sequence[Callback] | None = None) -> np.ndarray:
        """The model's outputs (probabilities after a softmax) for x, in inference mode: an array, or a list of
        them for a model whose outputs are a list; a progress bar at verbose=1 ('auto'), one line at 2. steps=s
        predicts the first s batches only."""
        verbose = _verbose(verbose)
        x = self._prepare_inputs(x)
        batch_size, steps = _batch_size(batch_size), _steps(steps, "steps")
        n = _count(x) if steps is None else min(_count(x), steps * batch_size)
        callbacks = check_list(callbacks, "callbacks", Callback, "cnn.callbacks.Callback instances")
        cbs = CallbackList(([ProgbarLogger(verbose)] if verbose else []) + callbacks, self,
                           {"verbose": verbose, "epochs": 1, "steps": -(-n // batch_size)})
        cbs.on_predict_begin()
        out = self._empty_outputs(n)
        threads = ThreadCap()  # as in fit: fewer threads while other processes keep cores busy
        try:
            for step, start in enumerate(range(0, n, batch_size)):
                cbs.on_predict_batch_begin(step)
                threads.tick()
                stop = min(start + batch_size, n)
                result = self._forward(_rows(x, start, stop), training=False, logits=False)
                for o, r in zip(out, result) if type(out) is list else ((out, result),):
                    o[start:stop] = r
                cbs.on_predict_batch_end(step, {"outputs": _rows(out, start, stop)})
        finally:
            threads.close()
        cbs.on_predict_end()
        return self._predicted(out)

    # ---- helpers -----------------------------------------------------------------------------

    def _check_compiled(self):
        if self.loss is None:
            raise RuntimeError("You must call compile() before using the model for training or evaluation.")

    def _prepare(self, x, y):
        """x, y as arrays of the model's dtype, the model built for x's shape, y checked against the output."""
        x = self._prepare_inputs(x)
        if y is None:
            raise ValueError("y (the targets) is required to train or evaluate the model")
        return x, self._targets(y, _count(x))

    def _targets(self, y, n):
        return self.loss.targets(y, (n,) + tuple(self.output_shape), self.dtype)

    def _empty_outputs(self, n):
        return np.empty((n,) + tuple(self.output_shape), self.dtype)

    def _predicted(self, out):
        """What predict and model(x) return, from the arrays _empty_outputs made (or _forward gave)."""
        return out

    def _penalty(self, grad):
        """The regularisation loss; with grad=True its gradient is added to the gradient buffer."""
        total = 0.0
        for layer in self.layers:
            for w, g, reg in layer.penalty():
                w, g = w.reshape(-1), g.reshape(-1)
                if grad:
                    total += _core.l2_penalty(g, w, 2 * reg.l2)
                else:
                    total += reg.l2 * float(np.dot(w.astype(np.float64), w))
        return total

    def _non_finite_weights(self):
        """None when every weight is finite, else which weights hold NaN or infinity (one pass when finite)."""
        p, chunk = self._params, _FINITE_CHUNK
        if np.isfinite(p).all() if p.size <= chunk else all(np.isfinite(p[i:i + chunk]).all()
                                                               for i in range(0, p.size, chunk)):
            return None
        found = []
        for layer in self.layers:
            for (wname, _, _), w in zip(layer.weight_specs(), layer.weights):
                bad = w.size - np.count_nonzero(np.isfinite(w))
                if bad:
                    found.append(f"layer {layer.name!r} {wname}: {bad} of {w.size} values")
        return "; ".join(found)

    @staticmethod
    def _loss_error(value, where, bad):
        """The FloatingPointError for a non-finite loss at `where`, whose step was not applied; `bad` is
        _non_finite_weights()."""
        if bad is None:
            state = "its step was not applied, and the weights, all finite, are as they were before it"
        else:
            state = (f"its step was not applied, but the weights already held NaN or infinity before it ({bad}): "
                     "they became so earlier, and steps are not undone")
        return FloatingPointError(f"the training loss became {value} at {where}; {state} (lower the learning "
                                  "rate or scale the inputs)")

    def _check_weights(self, when, cause):
        bad = self._non_finite_weights()
        if bad is not None:
            raise FloatingPointError(f"the weights hold NaN or infinity {when} ({bad}), though the loss was finite: "
                                     f"{cause}; steps are not undone (lower the learning rate or scale the inputs)")
