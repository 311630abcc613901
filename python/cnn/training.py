"""Training for every cnn model: compile, fit, evaluate, predict, train_on_batch, test_on_batch.

`Trainer` is a mixin; the model class provides the structure it drives: `layers`, the flat `_params` and
`_grads` buffers, `_rng`, `_lock`, `_commit`, `output_shape`, and `_prepare_inputs(x)`,
`_forward(x, training, logits)`, `_backward(dout)` and `_fused()`. A softmax (or sigmoid) output layer
followed by a cross-entropy loss is trained from its logits in one fused step.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import _core, distributed
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from ._contention import ThreadCap
from ._interrupt import deferring_interrupts
from ._locking import locked
from ._validation import INT_MAX, check_list, check_number
from .callbacks import Callback, CallbackList, History, ModelCheckpoint
from .progress import ProgbarLogger

if TYPE_CHECKING:
    from ._types import ArrayLike, Verbose
    from .losses import Loss
    from .optimizers import Optimizer

__all__ = ["Trainer"]

_FINITE_CHUNK = 16384  # weights per isfinite call: a training step allocates no weight-sized temporary


def _batch_size(value):
    """32 (Keras' default) for None, else a positive int that the kernels' int holds."""
    return 32 if value is None else check_number(value, "batch_size", low=1, high=INT_MAX, integer=True)


def _verbose(value):
    if value not in ("auto", 0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {value!r}")
    return 1 if value == "auto" else value


class Trainer:
    """compile/fit/evaluate/predict over the structure a model class provides (see the module docstring)."""

    @locked
    def compile(self, optimizer: str | Optimizer = "adam", loss: str | Loss | None = None,
                metrics: Sequence[str] | None = None) -> None:
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
        optimizer, loss = optimizers_mod.get(optimizer), losses_mod.get(loss)
        metrics = check_list(metrics, "metrics", str, "metric names such as ['accuracy']")
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r} in metrics; cnn supports 'accuracy' (or 'acc')")
        self.optimizer, self.loss, self.metrics = optimizer, loss, metrics

    # ---- fit ---------------------------------------------------------------------------------

    @locked
    @deferring_interrupts
    def fit(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
            epochs: int = 1, verbose: Verbose = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            shuffle: bool = True, initial_epoch: int = 0) -> History:
        """Train for epochs initial_epoch..epochs-1; returns a History (also kept as model.history).

        Per-batch logs hold the running sample-weighted means of the epoch so far ('loss', and the
        metric); epoch logs add 'val_loss' and 'val_<metric>' when validating."""
        self._check_compiled()
        batch_size, verbose = _batch_size(batch_size), _verbose(verbose)
        check_number(epochs, "epochs", low=0, integer=True)
        check_number(initial_epoch, "initial_epoch", low=0, integer=True)
        check_number(validation_split, "validation_split", low=0, high=1, high_open=True)
        x, y = self._prepare(x, y)
        x, y, x_val, y_val = self._validation_arrays(x, y, validation_split, validation_data)
        callbacks = check_list(callbacks, "callbacks", Callback, "cnn.callbacks.Callback instances")
        bad = self._non_finite_weights()
        if bad is not None:
            raise ValueError(f"the model's weights hold NaN or infinity before training ({bad}); "
                             "set finite weights with set_weights or rebuild the model")
        # ---- cnn.distributed: with a DistributedOptimizer on several ranks, every rank takes the same steps
        dist = distributed._fit_plan(self, len(x), batch_size)  # None otherwise; broadcasts rank 0's weights
        if dist is not None and dist.group.rank:  # only rank 0 prints and saves
            verbose, callbacks = 0, [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
        # ---- end cnn.distributed
        history = History()
        cbs = CallbackList(([ProgbarLogger(verbose)] if verbose else []) + callbacks + [history], self,
                           {"verbose": verbose, "epochs": epochs,
                            "steps": -(-len(x) // batch_size) if dist is None else dist.steps})
        threads = ThreadCap()  # fewer threads while other processes keep cores busy (cnn._contention)
        try:
            self.stop_training = False
            cbs.on_train_begin()
            logs = {}
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                logs = self._fit_epoch(epoch, x, y, batch_size, shuffle, cbs, threads, dist)
                if dist is not None:
                    dist.end_epoch(self)
                self._check_weights(f"after epoch {epoch}", "they were finite when fit began, so a step in this epoch "
                                    "overflowed and an activation kept the result out of the loss")
                if x_val is not None:
                    cbs.on_test_begin()
                    val_loss, val_acc = self._evaluate_arrays(x_val, y_val, batch_size, cbs)
                    if dist is not None:  # cnn.distributed: every rank's validation rows
                        val_loss, val_acc = dist.evaluation(val_loss, val_acc, len(x_val))
                    cbs.on_test_end(self._logs(val_loss, val_acc))
                    logs.update(self._logs(val_loss, val_acc, "val_"))
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

    def _fit_epoch(self, epoch, x, y, batch_size, shuffle, cbs, threads, dist=None):
        """One epoch of steps over (x, y); returns the last batch's logs (the epoch's running means). With dist
        (cnn.distributed) the steps, the permutation and the logs are the ranks' together."""
        n, fused = len(x), self._fused()
        order = None if not shuffle else dist.permutation(self._rng) if dist else self._rng.permutation(n)
        if shuffle:  # shuffled batches are gathered into buffers reused across steps
            xbuf = np.empty((min(batch_size, n),) + x.shape[1:], x.dtype)
            ybuf = np.empty((min(batch_size, n),) + y.shape[1:], y.dtype)
        total, hits, seen, logs = 0.0, 0, 0, {}
        for step in range(-(-n // batch_size) if dist is None else dist.steps):
            start, stop = step * batch_size, min((step + 1) * batch_size, n)
            if dist is not None and not dist.begin_step(step):  # cnn.distributed: this rank's rows ran out;
                start, stop = 0, 1  # it steps on a stand-in row at weight 0
            if shuffle:
                xb, yb = xbuf[:stop - start], ybuf[:stop - start]
                # mode='clip' (the indices are a permutation) lets take write straight into out;
                # mode='raise' would gather into a temporary first
                x.take(order[start:stop], axis=0, out=xb, mode="clip")
                y.take(order[start:stop], axis=0, out=yb, mode="clip")
            else:
                xb, yb = x[start:stop], y[start:stop]
            cbs.on_train_batch_begin(step)
            value, h = self._train_step(xb, yb, fused, dist)
            rows = stop - start if dist is None else dist.rows
            total, hits, seen = total + value * rows, hits + h, seen + rows
            logs = self._logs(total / seen, hits / seen)
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

    def _train_step(self, x, y, fused, dist=None):
        """One gradient step on a batch; returns (loss, accuracy hits). A non-finite loss skips the update.
        With dist (cnn.distributed) both are the global batch's, and every rank decides on them alike."""
        out = self._forward(x, training=True, logits=fused)
        value, dout = self.loss(out, y, logits=fused)
        self._backward(dout)
        value += self._penalty(grad=True)  # after backward: Dense and Conv2D overwrite their gradients
        hits = None
        if dist is not None:
            value, hits = dist.batch(value, self._accuracy_hits(out, y, fused) if self.metrics else 0)
        if not math.isfinite(value):
            return value, 0
        self._commit.begin()  # ended by the caller once the batch is recorded
        self.optimizer.step(self._params, self._grads)
        if hits is None:
            hits = self._accuracy_hits(out, y, fused) if self.metrics else 0
        return value, hits

    def _validation_arrays(self, x, y, validation_split, validation_data):
        """(x, y, x_val, y_val): validation_data as given, else the last fraction of the rows, taken before
        any shuffling (Keras' train_validation_split)."""
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            return (x, y) + self._prepare(*validation_data)
        if not validation_split:
            return x, y, None, None
        split = int(np.floor(len(x) * (1 - validation_split)))
        if split in (0, len(x)):
            raise ValueError(f"validation_split={validation_split} leaves no samples for training or "
                             f"validation out of {len(x)}")
        return x[:split], y[:split], x[split:], y[split:]

    # ---- one batch ---------------------------------------------------------------------------

    @locked
    @deferring_interrupts
    def train_on_batch(self, x: ArrayLike, y: ArrayLike) -> float | list[float]:
        """One optimizer step on (x, y); returns the loss, or [loss, accuracy] when compiled with metrics."""
        self._check_compiled()
        x, y = self._prepare(x, y)
        value, hits = self._train_step(x, y, self._fused())
        self._commit.end()
        if not math.isfinite(value):
            raise self._loss_error(value, "this batch", self._non_finite_weights())
        self._check_weights("after this batch's step, which was applied",
                            "either the step overflowed, or the weights held them before this call and an "
                            "activation kept them out of the loss")
        return [value, hits / len(x)] if self.metrics else value

    @locked
    def test_on_batch(self, x: ArrayLike, y: ArrayLike) -> float | list[float]:
        """The loss on (x, y) in inference mode, or [loss, accuracy] when compiled with metrics."""
        self._check_compiled()
        x, y = self._prepare(x, y)
        value, acc = self._evaluate_arrays(x, y, len(x))
        return [value, acc] if self.metrics else value

    # ---- inference ---------------------------------------------------------------------------

    @locked
    def evaluate(self, x: ArrayLike, y: ArrayLike, batch_size: int | None = None, verbose: Verbose = "auto",
                 callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss (and accuracy) over (x, y) in inference mode (dropout off)."""
        self._check_compiled()
        x, y = self._prepare(x, y)
        batch_size = _batch_size(batch_size)
        cbs = CallbackList(callbacks, self, {"verbose": verbose, "epochs": 1,
                                             "steps": -(-len(x) // batch_size)})
        cbs.on_test_begin()
        value, acc = self._evaluate_arrays(x, y, batch_size, cbs)
        logs = self._logs(value, acc)
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        return [value, acc] if self.metrics else value

    def _evaluate_arrays(self, x, y, batch_size, cbs=None):
        """(mean loss + penalty, accuracy) over all of x in inference mode."""
        fused = self._fused()
        total, hits = 0.0, 0
        for step, start in enumerate(range(0, len(x), batch_size)):
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            out = self._forward(xb, training=False, logits=fused)
            value, _ = self.loss(out, yb, logits=fused, grad=False)
            total += value * len(xb)
            if self.metrics:
                hits += self._accuracy_hits(out, yb, fused)
            if cbs is not None:
                cbs.on_test_batch_end(step, {"loss": total / min(start + batch_size, len(x))})
        return total / len(x) + self._penalty(grad=False), hits / len(x)

    @locked
    def predict(self, x: ArrayLike, batch_size: int | None = None, verbose: Verbose = "auto",
                callbacks: Sequence[Callback] | None = None) -> np.ndarray:
        """The model's outputs (probabilities after a softmax) for x, in inference mode."""
        x = self._prepare_inputs(x)
        batch_size = _batch_size(batch_size)
        cbs = CallbackList(callbacks, self, {"verbose": verbose, "epochs": 1,
                                             "steps": -(-len(x) // batch_size)})
        cbs.on_predict_begin()
        out = np.empty((len(x),) + tuple(self.output_shape), self.dtype)
        for step, start in enumerate(range(0, len(x), batch_size)):
            cbs.on_predict_batch_begin(step)
            out[start:start + batch_size] = self._forward(x[start:start + batch_size], training=False, logits=False)
            cbs.on_predict_batch_end(step, {"outputs": out[start:start + batch_size]})
        cbs.on_predict_end()
        return out

    # ---- helpers -----------------------------------------------------------------------------

    def _check_compiled(self):
        if self.loss is None:
            raise RuntimeError("You must call compile() before using the model for training or evaluation.")

    def _prepare(self, x, y):
        """x, y as arrays of the model's dtype, the model built for x's shape, y checked against the output."""
        x = self._prepare_inputs(x)
        if y is None:
            raise ValueError("y (the targets) is required to train or evaluate the model")
        return x, self.loss.targets(y, (x.shape[0],) + tuple(self.output_shape), self.dtype)

    def _logs(self, loss, acc, prefix=""):
        logs = {prefix + "loss": float(loss)}
        if self.metrics:
            logs[prefix + self.metrics[0]] = float(acc)
        return logs

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

    def _accuracy_hits(self, out, y, logits):
        out = out.reshape(len(out), -1)
        if self.loss.sparse:
            return int(np.count_nonzero(out.argmax(axis=1) == y))
        y = y.reshape(len(y), -1)
        if out.shape[1] == 1:
            threshold = 0.0 if logits and self.loss.fused_activation == "sigmoid" else 0.5
            return int(np.count_nonzero((out > threshold) == (y > 0.5)))
        return int(np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1)))

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
