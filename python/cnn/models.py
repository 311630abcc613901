"""Sequential: a Keras-style stack of layers trained by the C kernels.

The parameters of all layers live in one flat buffer and their gradients in another; each layer's
weights are views into them, so one optimizer kernel call updates the whole model. A softmax (or
sigmoid) output layer followed by a cross-entropy loss is trained from its logits in one fused step.

Deviations from Keras, on purpose: compile's default optimizer is 'adam' (Keras: 'rmsprop', which cnn
does not have); images are NCHW (channels first, as PyTorch); weights are initialised from the
model's own generator, `Sequential(seed=...)`, or from NumPy's global generator when no seed is given;
`build(input_shape)` takes the shape without the batch (a leading None is dropped, so Keras' (None, 784)
works too).

Non-finite values. A batch whose loss is not finite is not applied; fit raises FloatingPointError (unless
a callback such as TerminateOnNaN stops training and the weights are finite). A step whose loss was
finite can still make weights non-finite (an overflowing step, or a NaN that a saturating activation
hides from the loss); such a step is applied, not undone: undoing needs a copy of every weight per step,
and checking the weights after every step costs a pass over them (about 110 us, 3-4% of a 784-500-500-10
step at batch 50; 0.3% of a LeNet-5 step). Instead fit checks the weights (one pass over the flat
buffer) before training, at the end of every epoch before validation and callbacks see them, and
whenever a loss is not finite; train_on_batch checks them after its step. Every FloatingPointError
says whether the weights are finite and, if not, which layers hold NaN or infinity.

Threads. Layers keep per-call buffers, so each model has a lock: build, fit, evaluate, predict and the
other methods that read or write weights run one at a time per model (two threads predicting with one
model wait for each other and both get right answers).

Shared layers. A layer belongs to the one model it was added to: its weights are views into that model's
flat buffer. Adding it to a second model raises ValueError naming both (Keras shares the weights; cnn
does not yet); pop() releases it."""
from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import _core
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from ._contention import ThreadCap
from ._interrupt import NoCommit, deferring_interrupts
from ._validation import INT_MAX, as_float_array, check_dtype, check_list, check_name, check_number
from .callbacks import Callback, CallbackList, History
from .layers.base import Layer
from .layers.input_layer import InputLayer
from .layers.normalization import inference_steps
from .progress import ProgbarLogger

if TYPE_CHECKING:
    from ._types import ArrayLike, DTypeLike, PathLike, Verbose
    from .losses import Loss
    from .optimizers import Optimizer

__all__ = ["Sequential", "load_model"]


_FINITE_CHUNK = 16384  # weights per isfinite call: a training step allocates no weight-sized temporary


def _locked(method):
    """Run a method holding the model's lock (re-entrant: fit calls build and predict-like helpers)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


def _physical_memory():
    """Bytes of RAM, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _batch_size(value):
    """32 (Keras' default) for None, else a positive int that the kernels' int holds."""
    return 32 if value is None else check_number(value, "batch_size", low=1, high=INT_MAX, integer=True)


def load_model(path: PathLike) -> Sequential:
    """A model written by `model.save(path)`, compiled as it was (see cnn.saving)."""
    from . import saving  # zipfile, tempfile, json: loaded only when a model is saved or loaded

    return saving.load_model(path)


class Sequential:
    _commit = NoCommit()  # a Commit while fit or train_on_batch runs: SIGINT waits out the optimizer step

    def __init__(self, layers: Sequence[Layer] | None = None, name: str | None = None, seed: int | None = None,
                 dtype: DTypeLike = "float32") -> None:
        self.name = check_name(name, "name") or "sequential"
        self.dtype = check_dtype(dtype)
        self.seed = None if seed is None else check_number(seed, "seed", low=0, integer=True)
        self._lock = threading.RLock()
        self.layers = []
        self._input_layer = None
        self.built = False
        self.optimizer = self.loss = None
        self.metrics = []
        self.stop_training = False
        self.history = None
        self._rng = None
        try:
            for layer in check_list(layers, "layers", Layer, "cnn.layers.Layer instances"):
                self.add(layer)
        except BaseException:  # the model is never returned: release the layers it took
            for layer in self.layers:
                layer.model = None
            raise

    # ---- structure ---------------------------------------------------------------------------

    @_locked
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a cnn.layers.Layer, got {type(layer).__name__}")
        if layer.model is not None and layer.model is not self:
            raise ValueError(f"layer {layer.name!r} already belongs to model {layer.model.name!r}: its weights live "
                             "in that model's parameter buffer, and cnn does not share layers between models. "
                             "Add a new layer instead (type(layer).from_config(layer.get_config()), then "
                             "set_weights), or pop it from the other model first")
        if isinstance(layer, InputLayer):
            if self.layers or self._input_layer is not None:
                raise ValueError("an Input can only be the first element of a Sequential model")
            self._input_layer = layer
            self.built = False
            return
        names = {layer.name for layer in self.layers}
        if layer.name is None:
            base, i = layer.default_name(), 0
            layer.name = base
            while layer.name in names:
                i += 1
                layer.name = f"{base}_{i}"
        elif layer.name in names:
            raise ValueError(f"a layer named {layer.name!r} is already in the model; layer names must be unique")
        layer.model = self
        self.layers.append(layer)
        self.built = False

    @_locked
    def pop(self) -> Layer:
        if not self.layers:
            raise TypeError("there are no layers in the model to pop")
        layer = self.layers.pop()
        layer.model = None
        self.built = False
        return layer

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if name is not None and index is not None:
            raise ValueError("provide only a layer name or a layer index, not both")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")

    @_locked
    @deferring_interrupts
    def build(self, input_shape: Sequence[int | None] | None = None) -> None:
        """Infer every layer's shape from input_shape (batch excluded) and lay out the flat buffers.

        Layers that were built before keep their weights; new ones are initialised. A build that fails
        leaves the model as it was; Ctrl-C waits until it ends."""
        if not self.layers:
            raise ValueError("the model has no layers; add some before building it")
        if input_shape is None:
            input_shape = self.input_shape
        elif len(input_shape) > 1 and input_shape[0] is None:
            input_shape = input_shape[1:]
        if input_shape is None:
            raise ValueError("the first layer needs input_shape= or input_dim=, or call "
                             "model.build(input_shape) or fit on data first")
        layer_states = [dict(vars(layer)) for layer in self.layers]  # layer.build changes shapes in place
        self._commit.begin()
        try:
            self._build(tuple(input_shape))
        except BaseException:
            for layer, state in zip(self.layers, layer_states):
                vars(layer).clear()
                vars(layer).update(state)
            raise
        finally:
            self._commit.end()

    def _build(self, shape):
        """build's work: everything new is made first and the model points at it only at the end."""
        for layer in self.layers:
            shape = layer.build(shape)
        # trainable weights first: the optimizer steps over that prefix, and only it has gradients
        specs = [(layer, spec) for layer in self.layers for spec in layer.weight_specs()
                 if spec[0] not in layer.non_trainable]
        trainable = len(specs)
        specs += [(layer, spec) for layer in self.layers for spec in layer.weight_specs()
                  if spec[0] in layer.non_trainable]
        sizes = [math.prod(s[1]) for _, s in specs]
        total, trainable_total = sum(sizes), sum(sizes[:trainable])
        memory = _physical_memory()
        largest = max(zip(sizes, (layer.name for layer, _ in specs)), default=(0, None))
        need = 2 * total * self.dtype.itemsize + 8 * largest[0]  # + an initializer's float64 draw
        if memory is not None and need > memory:
            raise MemoryError(f"model {self.name!r} has {total} parameters: its weights, their gradients and "
                              f"their initialization need {need / 2**30:.1f} GiB, more than this machine's "
                              f"{memory / 2**30:.1f} GiB (the largest weight, {largest[0]} values, is in layer "
                              f"{largest[1]!r})")
        if self._rng is not None:  # a copy: an interrupted build leaves the generator as it was
            rng = np.random.default_rng()
            rng.bit_generator.state = self._rng.bit_generator.state
        else:
            rng = np.random.default_rng(self.seed if self.seed is not None else np.random.randint(2**31 - 1))
        params, grads = np.zeros(total, self.dtype), np.zeros(trainable_total, self.dtype)
        views, gradients = {}, {id(layer): [] for layer in self.layers}
        offset = 0
        for i, ((layer, (wname, wshape, _)), size) in enumerate(zip(specs, sizes)):
            views[id(layer), wname] = params[offset:offset + size].reshape(wshape)
            if i < trainable:
                gradients[id(layer)].append(grads[offset:offset + size].reshape(wshape))
            offset += size
        weights = {id(layer): [views[id(layer), wname] for wname, _, _ in layer.weight_specs()]
                   for layer in self.layers}
        for layer in self.layers:
            new, old = weights[id(layer)], layer.weights if layer.built else []
            if old and [w.shape for w in old] == [w.shape for w in new]:
                for w, o in zip(new, old):
                    w[...] = o
            else:
                for w, (_, wshape, init) in zip(new, layer.weight_specs()):
                    w[...] = init(tuple(wshape), rng, self.dtype)
        self._params, self._grads, self._rng = params, grads, rng
        for layer in self.layers:
            layer.weights, layer.grads = weights[id(layer)], gradients[id(layer)]
        # gradients that a layer adds into rather than overwrites, zeroed before each step
        self._accumulated_grads = [g for layer in self.layers if not layer.overwrites_grads for g in layer.grads]
        if self.optimizer is not None:
            self.optimizer.reset()  # its state was sized for the old buffer
        self.built = True
        self.output_shape = shape

    @property
    def input_shape(self):
        if self._input_layer is not None:
            return self._input_layer.shape
        return self.layers[0].input_shape if self.layers else None

    @_locked
    def count_params(self) -> int:
        if not self.built:
            self.build()
        return int(self._params.size)

    @_locked
    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for layer in self.layers for w in layer.weights]

    @_locked
    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        if not self.built:
            self.build()
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"set_weights expects a list of {expected} arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            layer.set_weights(weights[i:i + len(layer.weights)])
            i += len(layer.weights)

    # ---- training ----------------------------------------------------------------------------

    @_locked
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

    def _check_compiled(self):
        if self.loss is None:
            raise RuntimeError("You must call compile() before using the model for training or evaluation.")

    def _prepare(self, x, y):
        """x, y as arrays of the model's dtype, the model built for x's shape, y checked against the output."""
        x = self._prepare_inputs(x)
        if y is None:
            raise ValueError("y (the targets) is required to train or evaluate the model")
        return x, self.loss.targets(y, (x.shape[0],) + tuple(self.output_shape), self.dtype)

    def _prepare_inputs(self, x):
        """x as an array of the model's dtype, the model built for x's shape."""
        if not self.layers:
            raise ValueError("the model has no layers; add some before using it")
        x = as_float_array(x, "x", self.dtype, min_ndim=2)
        if not self.built:
            self.build(self.input_shape or x.shape[1:])
        expected = tuple(self.layers[0].input_shape)
        if x.shape[1:] != expected:
            raise ValueError(f"x must have shape (None, {', '.join(map(str, expected))}) "
                             f"for layer {self.layers[0].name!r}, got {x.shape}")
        return x

    def _fused(self):
        act = getattr(self.layers[-1], "activation", None)
        return act is not None and self.loss.fuses(act.name)

    def _forward(self, x, training, logits):
        """Inference folds each BatchNormalization into the Conv2D or Dense before it (one pass fewer)."""
        steps = [(layer, None) for layer in self.layers] if training else inference_steps(self.layers)
        h = x
        for layer, params in steps[:-1]:
            h = layer.forward(h, training=training) if params is None else layer.forward(h, params=params)
        last, params = steps[-1]
        extra = {} if params is None else {"params": params}
        return last.forward(h, training=training, logits=True, **extra) if logits else \
            last.forward(h, training=training, **extra)

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

    def _train_step(self, x, y, fused):
        """One gradient step on a batch; returns (loss, accuracy hits). A non-finite loss skips the update."""
        out = self._forward(x, training=True, logits=fused)
        value, dout = self.loss(out, y, logits=fused)
        for g in self._accumulated_grads:
            g.fill(0)
        for i in range(len(self.layers) - 1, -1, -1):
            dout = self.layers[i].backward(dout, need_dx=i > 0)
        value += self._penalty(grad=True)  # after backward: Dense and Conv2D overwrite their gradients
        if not math.isfinite(value):
            return value, 0
        self._commit.begin()  # ended by the caller once the batch is recorded
        self.optimizer.step(self._params[:self._grads.size], self._grads)
        hits = self._accuracy_hits(out, y, fused) if self.metrics else 0
        return value, hits

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

    @_locked
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

    @_locked
    def test_on_batch(self, x: ArrayLike, y: ArrayLike) -> float | list[float]:
        """The loss on (x, y) in inference mode, or [loss, accuracy] when compiled with metrics."""
        self._check_compiled()
        x, y = self._prepare(x, y)
        value, acc = self._evaluate_arrays(x, y, len(x))
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

    def _logs(self, loss, acc, prefix=""):
        logs = {prefix + "loss": float(loss)}
        if self.metrics:
            logs[prefix + self.metrics[0]] = float(acc)
        return logs

    @_locked
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

    @_locked
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

    @_locked
    @deferring_interrupts
    def fit(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
            epochs: int = 1, verbose: Verbose = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            shuffle: bool = True, initial_epoch: int = 0) -> History:
        """Train for epochs initial_epoch..epochs-1; returns a History (also kept as model.history).

        Per-batch logs hold the running sample-weighted means of the epoch so far ('loss', and the
        metric); epoch logs add 'val_loss' and 'val_<metric>' when validating."""
        self._check_compiled()
        batch_size = _batch_size(batch_size)
        check_number(epochs, "epochs", low=0, integer=True)
        check_number(initial_epoch, "initial_epoch", low=0, integer=True)
        check_number(validation_split, "validation_split", low=0, high=1, high_open=True)
        if verbose not in ("auto", 0, 1, 2):
            raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
        verbose = 1 if verbose == "auto" else verbose
        x, y = self._prepare(x, y)
        x, y, x_val, y_val = self._validation_arrays(x, y, validation_split, validation_data)
        n = len(x)
        steps = -(-n // batch_size)
        history = History()
        callbacks = check_list(callbacks, "callbacks", Callback, "cnn.callbacks.Callback instances")
        bad = self._non_finite_weights()
        if bad is not None:
            raise ValueError(f"the model's weights hold NaN or infinity before training ({bad}); "
                             "set finite weights with set_weights or rebuild the model")
        progress = [ProgbarLogger(verbose)] if verbose else []
        cbs = CallbackList(progress + callbacks + [history], self,
                           {"verbose": verbose, "epochs": epochs, "steps": steps})
        fused = self._fused()
        # shuffled batches are gathered into buffers reused across steps
        xbuf = np.empty((min(batch_size, n),) + x.shape[1:], x.dtype) if shuffle else None
        ybuf = np.empty((min(batch_size, n),) + y.shape[1:], y.dtype) if shuffle else None
        threads = ThreadCap()  # fewer threads while other processes keep cores busy (cnn._contention)
        try:
            self.stop_training = False
            cbs.on_train_begin()
            logs = {}
            for epoch in range(initial_epoch, epochs):
                cbs.on_epoch_begin(epoch)
                order = self._rng.permutation(n) if shuffle else None
                total, hits = 0.0, 0
                for step in range(steps):
                    start, stop = step * batch_size, min((step + 1) * batch_size, n)
                    if shuffle:
                        xb, yb = xbuf[:stop - start], ybuf[:stop - start]
                        # mode='clip' (the indices are a permutation) lets take write straight into out;
                        # mode='raise' would gather into a temporary first
                        x.take(order[start:stop], axis=0, out=xb, mode="clip")
                        y.take(order[start:stop], axis=0, out=yb, mode="clip")
                    else:
                        xb, yb = x[start:stop], y[start:stop]
                    cbs.on_train_batch_begin(step)
                    value, h = self._train_step(xb, yb, fused)
                    total, hits = total + value * (stop - start), hits + h
                    logs = self._logs(total / stop, hits / stop)
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
                self._check_weights(f"after epoch {epoch}", "they were finite when fit began, so a step in this epoch "
                                    "overflowed and an activation kept the result out of the loss")
                if x_val is not None:
                    cbs.on_test_begin()
                    val_loss, val_acc = self._evaluate_arrays(x_val, y_val, batch_size, cbs)
                    cbs.on_test_end(self._logs(val_loss, val_acc))
                    logs.update(self._logs(val_loss, val_acc, "val_"))
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            threads.close()
        self.history = history
        return history

    # ---- inspection and persistence ------------------------------------------------------------

    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[[str], object] | None = None) -> None:
        """Print Keras 3's table: layers, output shapes (None for the batch), parameter counts and sizes."""
        from . import summary as summary_mod

        summary_mod.print_summary(self, line_length, positions, print_fn)

    def _repr_html_(self):
        from . import summary as summary_mod

        return summary_mod.html_summary(self)

    @_locked
    def save(self, filepath: PathLike) -> None:
        """Architecture, weights, optimizer state and compile settings in one file (see cnn.saving)."""
        from . import saving

        saving.save_model(self, filepath)

    @_locked
    def get_config(self) -> dict:
        from . import saving

        return saving.model_payload(self)[0]

    @_locked
    def __getstate__(self):
        from . import saving

        config, arrays = saving.model_payload(self)
        return {"config": config, "arrays": {k: v.copy() for k, v in arrays.items()}}

    def __setstate__(self, state):
        from . import saving

        if not isinstance(state, dict) or state.keys() != {"config", "arrays"}:
            raise ValueError(f"a pickled cnn.Sequential's state must be a dict with 'config' and 'arrays', "
                             f"got {type(state).__name__}")
        model = saving.model_from_payload(state["config"], state["arrays"])
        self.__dict__.update(model.__dict__)
        for layer in self.layers:
            layer.model = self

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self.layers)} layers>"
