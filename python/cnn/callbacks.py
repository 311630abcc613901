"""Callbacks: hooks into Sequential.fit, evaluate and predict, with Keras 3's names, order and semantics.

fit calls, in order: a progress bar (verbose >= 1), the user's callbacks, then History, so a callback
that adds to the epoch logs (GradientNorms, LearningRateScheduler) has its values recorded."""
from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Callable

import numpy as np

from ._validation import check_choice, check_list, check_number

if TYPE_CHECKING:
    from ._types import PathLike

__all__ = ["Callback", "History", "CallbackList", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "TerminateOnNaN", "GradientNorms"]


class Callback:
    """Base class: override any hook. `self.model` and `self.params` are set before training starts."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    def __repr__(self):
        return f"{type(self).__name__}()"


class History(Callback):
    """history.history maps each logged name ('loss', 'accuracy', 'val_loss', ...) to one value per epoch;
    history.epoch lists the epochs run, history.params is {'verbose', 'epochs', 'steps'}."""

    def __init__(self):
        super().__init__()
        self.history, self.epoch = {}, []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = check_list(callbacks, "callbacks", Callback, "cnn.callbacks.Callback instances")
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        methods = [getattr(cb, hook) for cb in self.callbacks]

        def call(*args, **kwargs):
            for method in methods:
                method(*args, **kwargs)
        setattr(self, hook, call)  # resolved once: fit calls the batch hooks every step
        return call


class _Monitor(Callback):
    """The improvement test shared by EarlyStopping and ModelCheckpoint (Keras' MonitorCallback)."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        self.monitor = monitor
        self.mode = check_choice(mode, "mode", ("auto", "min", "max"))
        self.min_delta = abs(float(check_number(min_delta, "min_delta")))

    def _direction(self):
        """+1 to maximise, -1 to minimise; 'auto' knows the loss and the compiled metrics (each says its
        direction: mae and mse down, accuracy, precision, recall and auc up), as Keras 3 does."""
        if self.mode != "auto":
            return 1 if self.mode == "max" else -1
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        if name == "loss":
            return -1
        if name in ("accuracy", "acc"):
            return 1
        for metric in getattr(self.model, "compiled_metrics", ()):
            if metric.name == name:
                return 1 if metric.direction == "up" else -1
        raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor}, but cnn cannot tell "
                         "whether it should be maximized or minimized; pass mode='max' or mode='min'")

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        sign = self._direction()
        return sign * (value - reference) > self.min_delta

    def _value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__} is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}", stacklevel=3)
        return value


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved (by more than min_delta) for `patience` epochs.

    Keras 3 semantics: the best value starts as None (the first monitored epoch improves); an epoch that
    improves resets the wait only if it also beats `baseline`; training stops when wait >= patience on
    an epoch after the first. With restore_best_weights the best epoch's weights are put back in
    on_train_end, whether or not training stopped early."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = check_number(patience, "patience", low=0, integer=True)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_number(start_from_epoch, "start_from_epoch", low=0, integer=True)

    def on_train_begin(self, logs=None):
        self._direction()  # an unknown metric in mode 'auto' fails before the first epoch
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        current = self._value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model (model.save) at the end of each epoch, or only when `monitor` improved.

    filepath may hold `{epoch}` (1-based) and log names, e.g. 'model-{epoch:02d}-{val_loss:.2f}.npz'."""

    def __init__(self, filepath: PathLike, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto",
                 verbose: int = 0) -> None:
        super().__init__(monitor, mode, 0)
        self.filepath = os.fspath(filepath)
        self.save_best_only = bool(save_best_only)
        self.verbose = verbose
        self.best = None

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            self._direction()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = self._value(logs)
            if current is None:
                return
            if not self._is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                previous = "inf" if self.best is None else f"{self.best:.5f}"
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {previous} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        self.model.save(path)


class LearningRateScheduler(Callback):
    """Before each epoch sets model.optimizer.learning_rate = schedule(epoch, current learning rate)
    (epoch counted from 0); logs 'learning_rate' at each epoch's end, as Keras 3."""

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable as schedule(epoch, lr), got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch, float(self.model.optimizer.learning_rate))
        lr = float(check_number(lr, "the learning rate returned by schedule", low=0))
        self.model.optimizer.learning_rate = lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (fit then ends without raising).

    Unlike Keras, that batch's update is skipped, so the weights stay as they were. If they were already
    NaN or infinite (an earlier step overflowed), fit raises FloatingPointError all the same."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class GradientNorms(Callback):
    """Records, for each layer with weights, the mean over an epoch's batches of the Euclidean norm of the
    gradient of that batch's training loss (the mean loss plus any regularisation) with respect to the
    layer's first weight array (the kernel of Dense and Conv2D), before the optimizer step:

        history.history['grad_norm/<layer name>'][e] = (1/B) Σ_b ||∂L_b/∂kernel||₂

    Plotting these per layer shows vanishing (or exploding) gradients in deep sigmoid/tanh nets."""

    def on_epoch_begin(self, epoch, logs=None):
        self._sums = {layer.name: 0.0 for layer in self.model.layers if layer.grads}
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        for layer in self.model.layers:
            if layer.grads:
                g = layer.grads[0].reshape(-1)
                self._sums[layer.name] += math.sqrt(float(np.dot(g, g)))
        self._batches += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._batches:
            for name, total in self._sums.items():
                logs[f"grad_norm/{name}"] = total / self._batches
