"""The Layer protocol that Sequential drives.

A layer declares its parameters in `build`; the model then gives it views into one flat parameter
buffer and one flat gradient buffer, so an optimizer step is one C call over all parameters.
Every layer defines `forward(x, training=False)`, which keeps what `backward(dy, need_dx=True)` needs;
`backward` returns the input gradient (or None when need_dx is False, as for the first layer) and adds
into the gradient views, or, for a layer whose `overwrites_grads` is True (Dense, Conv2D), overwrites
them: the model then need not zero them before each step, a pass over every gradient saved.
Inside a model, the batch-sized arrays a backward writes (its input gradient, intermediate ones) come from the
model's gradient workspace (`_workspace.gradient`), valid until the layer below has read them; dy is the
layer's to overwrite only through `gradient(..., over=dy)`, which hands it out when the model lent it.

Every layer remembers the arguments its constructor was called with, so `get_config()` /
`from_config()` (used by save, load and pickle) work for any subclass without extra code. A layer made
without a name gets Keras' automatic one ('dense', 'dense_1', ...; see cnn.utils.clear_session)."""
from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .. import _naming, activations, initializers, regularizers
from .._validation import check_kernel_size, check_name, check_shape

if TYPE_CHECKING:
    from .._types import ArrayLike, Shape


class Layer:
    overwrites_grads = False  # a model sets it False on a shared layer: each call adds its gradient
    multi_input = False  # merge layers take a list of tensors
    augmentation = False  # the random augmentation layers (preprocessing.py): nothing before them learns
    # names of weights (from weight_specs) that training updates in forward, never the optimizer (Keras's
    # non-trainable weights: BatchNormalization's moving statistics); they have no gradient views
    non_trainable = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            # only the outermost constructor (the instance's own class) records its arguments
            if type(self).__init__ is recording_init:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                config = {}
                for k, v in list(bound.arguments.items())[1:]:
                    kind = signature.parameters[k].kind
                    if kind == inspect.Parameter.VAR_KEYWORD:
                        config.update(v)
                    elif kind != inspect.Parameter.VAR_POSITIONAL:
                        config[k] = v
                self._init_args = config
                init(self, *args, **kw)
                if self.name is None:  # named once made, so a refused construction uses up no number
                    self.name = _naming.unique_name(self.default_name())
            else:
                init(self, *args, **kw)

        cls.__init__ = recording_init

    def __init__(self, name: str | None = None, input_shape: Shape | None = None, input_dim: int | None = None) -> None:
        if input_dim is not None:
            input_shape = (input_dim,)
        self.name = check_name(name, "name")
        if self.name is None and type(self).__init__ is Layer.__init__:  # a layer with no constructor of its own
            self.name = _naming.unique_name(self.default_name())
        self.input_shape = None if input_shape is None else check_shape(input_shape, "input_shape")
        self.output_shape = None
        self.weights, self.grads = [], []
        self.built = False
        self.model = None
        self._inbound_nodes = []  # one Node per call on symbolic tensors (cnn.layers.node)

    def __call__(self, inputs):
        """Record a call on symbolic tensors (from cnn.layers.Input or another call) for cnn.Model and return the
        output tensor; the first call builds the layer for its input shape. A layer called again is shared:
        one set of weights serves every call, which must have the same input shape."""
        from .node import KerasTensor, Node

        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        label = f"layer {self.name or self.default_name()!r} ({type(self).__name__})"
        bad = next((t for t in tensors if not isinstance(t, KerasTensor)), None)
        if bad is not None or not tensors:
            raise TypeError(f"{label} takes inputs= symbolic tensors from cnn.layers.Input or another layer's call, "
                            f"got {type(bad if tensors else inputs).__name__}; to compute on arrays, build a "
                            "cnn.Model or cnn.Sequential and call predict")
        listed = isinstance(inputs, (list, tuple))
        if (listed and len(tensors) >= 2) != self.multi_input or (listed and not self.multi_input):
            want = "a list of at least 2 tensors" if self.multi_input else "one tensor"
            raise ValueError(f"{label} takes inputs= {want}, got {type(inputs).__name__} of {len(tensors)}")
        if self.model is not None:
            raise ValueError(f"{label} belongs to model {self.model.name!r}; cnn does not share layers between models")
        shape = [t.shape[1:] for t in tensors] if self.multi_input else tensors[0].shape[1:]
        if not self._inbound_nodes:
            state = dict(vars(self))
            try:
                self.build(shape)
            except BaseException:  # a refused call leaves the layer as it was
                vars(self).clear()
                vars(self).update(state)
                raise
        elif (tuple(map(tuple, shape)) if self.multi_input else tuple(shape)) != self.input_shape:
            raise ValueError(f"{label} was called on input shape {self.input_shape} and now on {tuple(shape)}: a "
                             "shared layer takes one input shape")
        return Node(self, tensors).output

    def _init_weights_config(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer):
        """The settings every kernel-and-bias layer (Dense, Conv2D) shares, resolved from their names."""
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self._buffers = {}

    @classmethod
    def default_name(cls):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower().replace("2_d", "2d")

    @classmethod
    def unique_default_name(cls, taken):
        """default_name(), numbered past the names in `taken` (dense, dense_1, ...)."""
        base = name = cls.default_name()
        i = 0
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        return name

    def build(self, input_shape):
        """Record the input shape (batch excluded) and return the output shape.

        Every output and weight dimension must fit the C kernels' int; their products are Python ints, so
        they cannot wrap (a model too big for memory is the model's MemoryError, see Sequential.build)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        for d in self.output_shape:
            check_kernel_size(self, d, f"an output dimension of {self.output_shape}")
        for wname, shape, _ in self.weight_specs():
            for d in shape:
                check_kernel_size(self, d, f"a dimension of weight {wname!r} {tuple(shape)}")
        self.built = True
        return self.output_shape

    def compute_output_shape(self, input_shape):
        return input_shape

    def weight_specs(self):
        """[(name, shape, initializer), ...] in get_weights order."""
        return []

    def penalty(self):
        """[(weight view, gradient view, regularizer)] that add to the training loss."""
        return []

    def count_params(self) -> int:
        return sum(math.prod(shape) for _, shape, _ in self.weight_specs()) if self.built else 0

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"layer {self.name!r} expects {len(self.weights)} weight arrays, got {len(weights)}")
        for (wname, shape, _), new in zip(self.weight_specs(), weights):
            new = np.asarray(new)
            if new.shape != tuple(shape):
                raise ValueError(f"layer {self.name!r} weight {wname!r} must have shape {tuple(shape)}, "
                                 f"got {new.shape}")
        for cur, new in zip(self.weights, weights):
            cur[...] = new

    def get_config(self) -> dict:
        """The constructor arguments (as given, with defaults filled in) and the current name."""
        config = dict(getattr(self, "_init_args", {}))
        config["name"] = self.name
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def wants_input_gradient(self) -> bool:
        """False when every layer before this one in its model is an augmentation layer: Sequential asks every
        layer but the first for its input gradient, and nothing before this one would learn from it."""
        for layer in self.model.layers if self.model is not None else ():
            if layer is self:
                return False
            if not layer.augmentation:
                return True
        return True

    def check_input(self, x):
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects input shape "
                             f"(None, {', '.join(map(str, self.input_shape))}), got {x.shape}")

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} output {self.output_shape}>"
