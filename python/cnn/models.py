"""Model and Sequential: Keras-style models trained by the C kernels; their structure and configuration.

`Model(inputs, outputs)` is Keras's functional API (cnn.functional): the layers called between
`cnn.layers.Input` tensors and the output tensors, with several inputs and outputs, layers called at
several places sharing their weights, and gradients summed where paths meet. `Sequential` is the special
case of one chain, which it runs without the graph's bookkeeping. A model's layers keep their weights as
views into one flat parameter buffer and their gradients as views into another, so one optimizer kernel
call updates the whole model. This module holds the structure: layers, shapes, the flat buffers, weights
and the configuration (get_config/from_config, save, pickle); training is cnn.training's Trainer, files
are cnn.saving's.

Deviations from Keras, on purpose: compile's default optimizer is 'adam' (Keras: 'rmsprop', which cnn
does not have); images are NCHW (channels first, as PyTorch); weights are initialised from the
model's own generator, `Sequential(seed=...)`, or from NumPy's global generator when no seed is given;
`build(input_shape)` takes the shape without the batch (a leading None is dropped, so Keras' (None, 784)
works too).

Threads. Layers keep per-call buffers, so each model has a lock: build, fit, evaluate, predict and the
other methods that read or write weights run one at a time per model (two threads predicting with one
model wait for each other and both get right answers).

Shared layers. Within a Model, a layer called twice is one layer with one set of weights, used by both
calls, as in Keras. Across models it is not: a layer belongs to the one model it was added to, as its
weights are views into that model's flat buffer; adding it to a second model raises ValueError naming
both (Keras shares the weights between models; cnn does not yet); Sequential.pop() releases it."""
from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import _naming
from . import serialization as ser
from ._interrupt import NoCommit, deferring_interrupts
from ._locking import locked
from ._validation import as_float_array, check_dtype, check_list, check_name, check_number, check_shape
from .layers._workspace import Workspace
from .layers.base import Layer
from .layers.input_layer import InputLayer
from .layers.node import KerasTensor
from .layers.fusion import chain_steps
from .training import Trainer

if TYPE_CHECKING:
    from ._types import ArrayLike, DTypeLike, PathLike

__all__ = ["Model", "Sequential", "load_model"]


def _physical_memory():
    """Bytes of RAM, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def load_model(path: PathLike) -> Model:
    """A model written by `model.save(path)`, compiled as it was (see cnn.saving)."""
    from . import saving  # zipfile, tempfile, json: loaded only when a model is saved or loaded

    return saving.read(path, Model._from_payload)


class Model(Trainer):
    """`Model(inputs, outputs)`: Keras's functional model, the graph of layers from `cnn.layers.Input`
    tensors to output tensors; it makes a cnn.functional.Functional (see there), as Keras does.

    Model itself holds what every model shares: the lock, the flat buffers, weights, the summary, the
    configuration, save and pickle; Sequential and Functional give the structure."""

    _commit = NoCommit()  # a Commit while fit or train_on_batch runs: SIGINT waits out the optimizer step
    _formats = {}  # the configuration's "format" -> the class that reads it
    _many_losses = False  # a loss per output (Functional), or one loss (Sequential)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._formats[f"cnn.{cls.__name__}"] = cls

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            from .functional import Functional

            cls = Functional
        return super().__new__(cls)

    def _init_state(self, name, seed, dtype):
        self.name = name
        self.dtype = check_dtype(dtype)
        self.seed = None if seed is None else check_number(seed, "seed", low=0, integer=True)
        self._lock = threading.RLock()
        self.layers = []
        self.built = False
        self.optimizer = self.loss = self.loss_weights = None
        self.metrics, self.weighted_metrics, self.compiled_metrics = [], [], []
        self.stop_training = False
        self.history = None
        self._rng = None
        self._workspace = Workspace()  # the layers' gradient buffers in a backward pass (layers/_workspace.py)

    # ---- weights -----------------------------------------------------------------------------

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

    def _allocate(self):
        """Lay out the flat buffers for self.layers (each built for its input shape): layers built before keep
        their weights, new ones are initialised. Everything new is made first and the model points at it only
        at the end."""
        # trainable weights first: the optimizer steps over that prefix, and only it has gradients. A weight is
        # known by its place in its layer's specs: a wrapper (Bidirectional) lists two layers' alike names
        specs = [(layer, j, spec) for layer in self.layers for j, spec in enumerate(layer.weight_specs())
                 if spec[0] not in layer.non_trainable]
        trainable = len(specs)
        specs += [(layer, j, spec) for layer in self.layers for j, spec in enumerate(layer.weight_specs())
                  if spec[0] in layer.non_trainable]
        sizes = [math.prod(s[1]) for _, _, s in specs]
        total, trainable_total = sum(sizes), sum(sizes[:trainable])
        memory = _physical_memory()
        largest = max(zip(sizes, (layer.name for layer, _, _ in specs)), default=(0, None))
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
        for i, ((layer, j, (_, wshape, _)), size) in enumerate(zip(specs, sizes)):
            views[id(layer), j] = params[offset:offset + size].reshape(wshape)
            if i < trainable:
                gradients[id(layer)].append(grads[offset:offset + size].reshape(wshape))
            offset += size
        weights = {id(layer): [views[id(layer), j] for j in range(len(layer.weight_specs()))]
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

    @locked
    def count_params(self) -> int:
        if not self.built:
            self.build()
        return int(self._params.size)

    def _build_if_sized(self):
        """Build a model that knows its input size but is not built yet (Keras builds it on first use)."""
        if not self.built and self.layers and self.input_shape is not None:
            self.build()

    @locked
    def get_weights(self) -> list[np.ndarray]:
        """Every weight array in layer order; [] only while the input size is unknown."""
        self._build_if_sized()
        return [w.copy() for layer in self.layers for w in layer.weights]

    @locked
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

    # ---- inspection and persistence ----------------------------------------------------------

    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[[str], object] | None = None) -> None:
        """Print Keras 3's table: layers, output shapes (None for the batch), parameter counts and sizes; a
        model that knows its input size is built first."""
        from . import summary as summary_mod

        with self._lock:
            self._build_if_sized()
        summary_mod.print_summary(self, line_length, positions, print_fn)

    def _connected_to(self):
        """{layer: its sources} for summary's Connected to column, or None where Keras prints none (a chain)."""
        return None

    def _repr_html_(self):
        from . import summary as summary_mod

        return summary_mod.html_summary(self)

    @locked
    def save(self, filepath: PathLike) -> None:
        """Architecture, weights, optimizer state and compile settings in one file (see cnn.saving)."""
        from . import saving

        saving.write(filepath, *self._payload())

    @locked
    def get_config(self) -> dict:
        """The model as JSON-able data: its structure, its generators' states and its compile settings
        (everything save writes but the arrays)."""
        return self._payload()[0]

    @classmethod
    def from_config(cls, config: dict) -> Model:
        """A model with the structure, generator states and compile settings of `config` (from get_config);
        a built one gets freshly initialised weights and optimizer state."""
        return cls._from_payload(config, None)

    @classmethod
    def _from_payload(cls, config, arrays):
        """The model `config` and `arrays` (from _payload) describe; arrays=None initialises the weights and
        the optimizer state afresh. ValueError names the first field that is missing, unknown, of the wrong
        type or out of range, or an array of the wrong shape or dtype."""
        from . import functional  # noqa: F401  (registers its format)

        kind = cls._formats.get(config.get("format")) if isinstance(config, dict) else None
        if kind is None or not issubclass(kind, cls):
            raise ValueError(f"not a cnn model: the file's configuration does not describe a "
                             f"{' or a '.join(f for f, c in cls._formats.items() if issubclass(c, cls))}")
        if type(config.get("version")) is not int or config["version"] != kind._version:
            raise ValueError(f"cnn model file version {config.get('version')!r} is not supported "
                             f"(expected {kind._version})")
        if arrays is not None and not isinstance(arrays, dict):
            raise ValueError(f"the arrays must be a dict, got {type(arrays).__name__}")
        return kind._from_config_fields(config, arrays)

    def _restore(self, config, arrays, expected):
        """The part of _from_payload every model shares, after its structure is built: generator states,
        compile settings and optimizer state; refuses arrays beyond `expected` and those it reads."""
        if config["rng"] is not None:
            self._rng = ser.generator(config["rng"], "config.rng")
        if not isinstance(config["layer_rngs"], dict):
            raise ValueError(f"config.layer_rngs must be an object, got {config['layer_rngs']!r}")
        for name, state in config["layer_rngs"].items():
            layer = next((candidate for candidate in self.layers if candidate.name == name), None)
            if layer is None or not hasattr(layer, "_rng"):
                raise ValueError(f"config.layer_rngs names {name!r}, which is no layer with its own generator "
                                 f"(Dropout with a seed) in the model")
            layer._rng = ser.generator(state, f"config.layer_rngs.{name}")
        if arrays is None:
            return self
        if config["compile"] is not None:
            expected |= ser.compile_from_config(self, config["compile"], arrays, self._many_losses)
        unknown = sorted(set(arrays) - expected)
        if unknown:
            raise ValueError(f"unknown arrays {unknown} (this model has {sorted(expected)})")
        return self

    def _restore_params(self, arrays, needed):
        """Copy the saved flat parameters (`needed` of them, checked before build allocates them) in."""
        params = ser.array(arrays, "params", (needed,), self.dtype)
        if not np.isfinite(params).all():
            raise ValueError("the array 'params' holds NaN or infinity")
        return params

    def _shared_payload(self):
        """(config, arrays): the fields every model's configuration holds."""
        compiled, arrays = ser.compile_config(self, self._many_losses)
        config = {"format": f"cnn.{type(self).__name__}", "version": self._version, "name": self.name,
                  "seed": self.seed, "dtype": self.dtype.name, "built": self.built,
                  "rng": ser.generator_state(self._rng),
                  "layer_rngs": {layer.name: ser.generator_state(layer._rng) for layer in self.layers
                                 if getattr(layer, "_rng", None) is not None},
                  "compile": compiled}
        if self.built:
            arrays["params"] = self._params
        return config, arrays

    @locked
    def __getstate__(self):
        config, arrays = self._payload()
        return {"config": config, "arrays": {k: v.copy() for k, v in arrays.items()}}

    def __setstate__(self, state):
        if not isinstance(state, dict) or state.keys() != {"config", "arrays"}:
            raise ValueError(f"a pickled cnn.{type(self).__name__}'s state must be a dict with 'config' and "
                             f"'arrays', got {type(state).__name__}")
        model = type(self)._from_payload(state["config"], state["arrays"])
        self.__dict__.update(model.__dict__)
        for layer in self.layers:
            layer.model = self


class Sequential(Model):
    """A stack of layers, each feeding the next: the chain case of Model, run without its graph."""

    _version = 1
    _fields = ["format", "version", "name", "seed", "dtype", "built", "input_shape", "input_layer", "layers", "rng",
               "layer_rngs", "compile"]

    def __init__(self, layers: Sequence[Layer] | None = None, name: str | None = None, seed: int | None = None,
                 dtype: DTypeLike = "float32") -> None:
        self._init_state(check_name(name, "name") or _naming.unique_name("sequential"), seed, dtype)
        self._input_layer = None
        try:
            for layer in check_list(layers, "layers", (Layer, KerasTensor),
                                    "cnn.layers.Layer instances (or a cnn.layers.Input first)"):
                self.add(layer)
        except BaseException:  # the model is never returned: release the layers it took
            for layer in self.layers:
                layer.model = None
            raise

    # ---- structure ---------------------------------------------------------------------------

    @locked
    def add(self, layer: Layer) -> None:
        if isinstance(layer, KerasTensor) and isinstance(layer._keras_history[0], InputLayer):
            layer = layer._keras_history[0]  # Input(shape) starts a Sequential, as in Keras
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes a cnn.layers.Layer, got {type(layer).__name__}")
        if layer.model is not None and layer.model is not self:
            raise ValueError(f"layer {layer.name!r} already belongs to model {layer.model.name!r}: its weights live "
                             "in that model's parameter buffer, and cnn does not share layers between models. "
                             "Add a new layer instead (type(layer).from_config(layer.get_config()), then "
                             "set_weights), or pop it from the other model first")
        if layer.multi_input:
            raise ValueError(f"layer {layer.name or layer.default_name()!r} ({type(layer).__name__}) merges several "
                             "inputs and cannot be part of a Sequential; build a cnn.Model(inputs, outputs)")
        if isinstance(layer, InputLayer):
            if self.layers or self._input_layer is not None:
                raise ValueError("an Input can only be the first element of a Sequential model")
            self._input_layer = layer
            self.built = False
            return
        if layer.name in {layer.name for layer in self.layers}:
            raise ValueError(f"a layer named {layer.name!r} is already in the model; layer names must be unique")
        layer.model = self
        self.layers.append(layer)
        self.built = False

    @locked
    def pop(self) -> Layer:
        if not self.layers:
            raise TypeError("there are no layers in the model to pop")
        layer = self.layers.pop()
        layer.model = None
        self.built = False
        return layer

    @locked
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
            shape = tuple(input_shape)
            for layer in self.layers:
                shape = layer.build(shape)
            self._allocate()
            self.built = True
            self.output_shape = shape
        except BaseException:
            for layer, state in zip(self.layers, layer_states):
                vars(layer).clear()
                vars(layer).update(state)
            raise
        finally:
            self._commit.end()

    @property
    def input_shape(self):
        if self._input_layer is not None:
            return self._input_layer.shape
        return self.layers[0].input_shape if self.layers else None

    # ---- the chain the trainer drives ----------------------------------------------------------

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
        """Inference folds each BatchNormalization into the Conv2D or Dense before it (one pass fewer); training and
        inference let a neighbour take over a ReLU (layers/fusion.py). The layers a training pass ran are kept for
        the backward."""
        steps = chain_steps(self.layers, training)
        if training:
            self._ran = [i for i, _, _ in steps]
        h = x
        for _, layer, kwargs in steps[:-1]:
            h = layer.forward(h, training=training, **kwargs) if "params" not in kwargs else layer.forward(h, **kwargs)
        _, last, kwargs = steps[-1]
        if "params" in kwargs:
            return last.forward(h, logits=True, **kwargs) if logits else last.forward(h, **kwargs)
        return last.forward(h, training=training, logits=True, **kwargs) if logits else \
            last.forward(h, training=training, **kwargs)

    def _backward(self, dout):
        """Gradients of every weight into the flat gradient buffer, from the output's gradient, through the layers
        the last training pass ran (a ReLU a BatchNormalization took over did not run)."""
        for g in self._accumulated_grads:
            g.fill(0)
        ws = self._workspace
        ws.begin()
        try:
            for i in reversed(self._ran):
                dout = self.layers[i].backward(dout, need_dx=i > 0)
                ws.chain(dout)  # frees what the layer read; in a chain the next layer may write over dout
        finally:
            ws.end()

    # ---- configuration -------------------------------------------------------------------------

    def _payload(self):
        """(config, arrays): everything needed to rebuild the model exactly."""
        config, arrays = self._shared_payload()
        config.update({"input_shape": None if self.input_shape is None else list(self.input_shape),
                       "input_layer": None if self._input_layer is None else ser.layer_config(self._input_layer),
                       "layers": [ser.layer_config(layer) for layer in self.layers]})
        return {k: config[k] for k in self._fields}, arrays

    @classmethod
    def _from_config_fields(cls, config, arrays):
        ser.fields(config, "config", cls._fields)
        try:
            model = cls(name=ser.typed(config["name"], "config.name", str), seed=config["seed"],
                        dtype=ser.typed(config["dtype"], "config.dtype", str))
        except (TypeError, ValueError) as e:
            raise ValueError(f"config: {e}") from None
        if config["input_layer"] is not None:
            model.add(ser.construct({"InputLayer": InputLayer}, config["input_layer"], "config.input_layer", "layer"))
        if not isinstance(config["layers"], list):
            raise ValueError(f"config.layers must be a list, got {config['layers']!r}")
        classes = ser.subclasses(Layer)
        for i, entry in enumerate(config["layers"]):
            try:
                model.add(ser.construct(classes, entry, f"config.layers[{i}]", "layer"))
            except (TypeError, ValueError) as e:  # an Input among the layers, a repeated name
                raise ValueError(f"config.layers[{i}]: {e}") from None
        input_shape = config["input_shape"]
        if input_shape is not None:
            try:
                input_shape = check_shape(ser.typed(input_shape, "config.input_shape", list), "config.input_shape")
            except (TypeError, ValueError) as e:
                raise ValueError(f"config.input_shape: {e}") from None
            if model.input_shape is not None and tuple(model.input_shape) != input_shape:
                raise ValueError(f"config.input_shape is {list(input_shape)} but the layers declare "
                                 f"{model.input_shape}")
        expected = set()
        if ser.typed(config["built"], "config.built", bool):
            if input_shape is None:
                raise ValueError("config.input_shape must be given for a built model, got null")
            try:
                needed = model._parameter_count(input_shape)
            except (TypeError, ValueError) as e:
                raise ValueError(f"config.layers do not fit config.input_shape {list(input_shape)}: {e}") from None
            params = None if arrays is None else model._restore_params(arrays, needed)
            model.build(input_shape)
            if params is not None:
                model._params[...] = params
                expected.add("params")
        return model._restore(config, arrays, expected)

    def _parameter_count(self, input_shape):
        """The size of the flat buffer build(input_shape) would allocate, found without allocating."""
        shape, total = input_shape, 0
        for layer in self.layers:
            shape = layer.build(shape)
            total += sum(int(np.prod(s, dtype=object)) for _, s, _ in layer.weight_specs())
        return total

    def __repr__(self):
        return f"<Sequential {self.name!r}: {len(self.layers)} layers>"


