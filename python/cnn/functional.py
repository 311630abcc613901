"""Functional: the model `cnn.Model(inputs, outputs)` makes, Keras's functional API.

Layers called on `cnn.layers.Input` tensors (and on each other's outputs) record a graph (cnn.layers.node);
the model orders it as Keras does (cnn.graph.map_graph) and runs it (cnn.graph.Plan). inputs and outputs
are a tensor or a list of them; fit, evaluate and predict take, and predict returns, an array for a single
tensor and a list of arrays for a list (x and y may also be dicts by Input or output layer name). compile
takes one loss for every output, or a list or dict of them, and loss_weights: the training loss is their
weighted sum. Each metric (and weighted metric) applies to every output, logged as '<output layer>_<metric>'
when there are several (metrics=['accuracy'] logs each output's accuracy); a Metric object is one running
state, so a model of several outputs takes metrics by name or function only (ValueError otherwise).
sample_weight is one array for every output; class_weight is refused for several outputs, as in Keras.
model.layers lists the Input layers too, in Keras's order, and get_weights follows it. A layer called at
several places is one layer: its calls share its weights and add their gradients into its one slice of the
gradient buffer."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import _naming, graph
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import serialization as ser
from ._locking import locked
from ._validation import as_float_array, check_name, check_number
from .layers.base import Layer
from .layers.input_layer import InputLayer
from .models import Model
from .training import Trainer, _loss_weights_and_metrics, _sample_weighted

if TYPE_CHECKING:
    from ._types import DTypeLike
    from .layers.node import KerasTensor

__all__ = ["Functional"]


class Functional(Model):
    _version = 1
    _many_losses = True
    _fields = ["format", "version", "name", "seed", "dtype", "built", "layers", "nodes", "inputs", "outputs",
               "single_input", "single_output", "rng", "layer_rngs", "compile"]

    def __init__(self, inputs: KerasTensor | Sequence[KerasTensor], outputs: KerasTensor | Sequence[KerasTensor],
                 name: str | None = None, seed: int | None = None, dtype: DTypeLike = "float32") -> None:
        self._init_state(check_name(name, "name") or _naming.unique_name("functional"), seed, dtype)
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self.inputs, self.outputs = graph.check_tensors(inputs, "inputs"), graph.check_tensors(outputs, "outputs")
        layers, nodes = graph.map_graph(self.inputs, self.outputs)
        for layer in layers:
            if layer.model is not None and not isinstance(layer, InputLayer):
                raise ValueError(f"layer {layer.name!r} already belongs to model {layer.model.name!r}: its weights "
                                 "live in that model's parameter buffer, and cnn does not share layers between "
                                 "models")
        _name_layers(layers)
        counts = Counter(node.layer for node in nodes)
        self.layers, self._nodes = layers, nodes
        try:
            for layer in layers:
                if not isinstance(layer, InputLayer):
                    layer.model = self
                if counts[layer] > 1:  # each call adds its gradient into the one slice
                    layer.overwrites_grads = False
            self._allocate()
        except BaseException:  # the model is never returned: release the layers it took
            for layer in layers:
                if layer.model is self:
                    layer.model = None
            raise
        self.built = True
        self._plan = graph.Plan(self.inputs, self.outputs, nodes)
        self.loss_weights = None

    def build(self, input_shape=None) -> None:
        """A Model is built when it is made (its Inputs give every shape); this does nothing, as in Keras."""

    @property
    def input_shape(self):
        shapes = [t.shape[1:] for t in self.inputs]
        return shapes[0] if self._single_input else shapes

    @property
    def output_shape(self):
        shapes = [t.shape[1:] for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    def _output_names(self):
        return [t._keras_history[0].name for t in self.outputs]

    # ---- what the trainer drives ---------------------------------------------------------------

    @locked
    def compile(self, optimizer="adam", loss=None, loss_weights=None, metrics: Sequence[str] | None = None,
                weighted_metrics: Sequence[str] | None = None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True) -> None:
        """As Sequential.compile (Keras 3's signature); loss: one loss
        for every output, or a list (in outputs order) or dict (by output layer name) of them; loss_weights: a
        list or dict of numbers (each 1 when not given), or one number for a model of one output."""
        loss_weights, metrics = _loss_weights_and_metrics(loss_weights, metrics)  # compile(opt, loss, ['accuracy'])
        names = self._output_names()
        losses = _per_output(loss, "loss", names, "output")
        losses = [loss] * len(names) if losses is None else losses
        if any(item is None for item in losses):
            raise ValueError(f"compile needs a loss for every output {names}, e.g. loss='categorical_crossentropy'")
        weights = _per_output(loss_weights, "loss_weights", names, "output")
        if weights is None and loss_weights is not None:
            if len(names) > 1:
                raise ValueError(f"loss_weights must be a list or dict with one number per output {names}, got "
                                 f"{loss_weights!r}")
            weights = [loss_weights]
        weights = [1.0] * len(names) if weights is None else \
            [float(check_number(w, f"loss_weights[{i}]")) for i, w in enumerate(weights)]
        if len(names) > 1:
            for spec in list(metrics or []) + list(weighted_metrics or []):
                if isinstance(spec, metrics_mod.Metric):
                    raise ValueError(f"a Metric object ({type(spec).__name__}) holds one running state and cannot "
                                     f"watch the {len(names)} outputs {names}; give metrics by name or function "
                                     "(each applies to every output)")
        losses = [losses_mod.get(item) for item in losses]
        # checks the optimizer, the metrics and the options
        Trainer.compile(self, optimizer, losses[0], None, metrics, weighted_metrics, run_eagerly, steps_per_execution,
                        jit_compile, auto_scale_loss)
        self.loss = losses[0] if len(losses) == 1 else losses
        self._losses, self._loss_weights = losses, weights
        self.loss_weights = None if loss_weights is None else weights

    def _prepare_inputs(self, x):
        """x as a list of arrays of the model's dtype, one per input, each checked against its Input."""
        names = [t._keras_history[0].name for t in self.inputs]
        xs = _structure(x, "x", names, "input", self._single_input)
        arrays = []
        for i, (value, t) in enumerate(zip(xs, self.inputs)):
            where = "x" if self._single_input else f"x[{i}]"
            a = as_float_array(value, where, self.dtype, min_ndim=2)
            if a.shape[1:] != t.shape[1:]:
                raise ValueError(f"{where} must have shape (None, {', '.join(map(str, t.shape[1:]))}) for input "
                                 f"{names[i]!r}, got {a.shape}")
            if arrays and len(a) != len(arrays[0]):
                raise ValueError(f"{where} has {len(a)} rows but x[0] has {len(arrays[0])}: every input needs one "
                                 "row per sample")
            arrays.append(a)
        return arrays

    def _targets(self, y, n):
        names = self._output_names()
        ys = _structure(y, "y", names, "output", self._single_output)
        targets = []
        for i, (value, loss, t) in enumerate(zip(ys, self._losses, self.outputs)):
            try:
                targets.append(loss.targets(value, (n,) + t.shape[1:], self.dtype))
            except (TypeError, ValueError) as e:
                if self._single_output:
                    raise
                raise type(e)(f"y[{i}] (output {names[i]!r}): {e}") from None
        return targets

    def _empty_outputs(self, n):
        return [np.empty((n,) + t.shape[1:], self.dtype) for t in self.outputs]

    def _predicted(self, out):
        return out[0] if self._single_output else out

    def _fused(self):
        consumed = {id(t) for node in self._nodes for t in node.inputs}
        fused = []
        for t, loss in zip(self.outputs, self._losses):
            act = getattr(t._keras_history[0], "activation", None)
            fused.append(act is not None and loss.fuses(act.name) and id(t) not in consumed
                         and self.outputs.count(t) == 1)
        return tuple(fused)

    def _forward(self, xs, training, logits):
        logit_ids = {id(t) for t, f in zip(self.outputs, logits) if f} if logits else ()
        return self._plan.forward(xs, training, logit_ids)

    def _backward(self, douts):
        for g in self._accumulated_grads:
            g.fill(0)
        self._plan.backward(douts, self._workspace)

    def _loss_value(self, out, y, fused, grad, sample_weight):
        """The weighted sum of the outputs' losses (each with the sample weights), and each output's gradient
        (scaled by its weights)."""
        total, douts = 0.0, []
        for loss, weight, o, t, f in zip(self._losses, self._loss_weights, out, y, fused):
            value, d = _sample_weighted(loss, o, t, f, grad, sample_weight, weight)
            total += value
            douts.append(d)
        return total, douts

    def _metric_outputs(self):
        prefixes = [""] if len(self.outputs) == 1 else [f"{name}_" for name in self._output_names()]
        return [(p, loss, int(np.prod(t.shape[1:]))) for p, loss, t in zip(prefixes, self._losses, self.outputs)]

    def _metric_views(self, out, y, fused):
        return [(t, t_out._keras_history[0].activation.forward(o) if f else o)
                for t, o, f, t_out in zip(y, out, fused, self.outputs)]

    def _connected_to(self):
        """{layer: "source[node][tensor], ..."} for summary's Connected to column, or None for a chain that
        Keras prints without it (no merges, no shared layers)."""
        counts = Counter(node.layer for node in self._nodes)
        if all(len(node.inputs) == 1 for node in self._nodes) and max(counts.values(), default=1) == 1 and \
                len(self.inputs) == 1 and len(self.outputs) == 1 and \
                len({id(t) for node in self._nodes for t in node.inputs}) == len(self._nodes):
            return None
        text = {}
        for node in self._nodes:
            parts = [f"{t._keras_history[0].name}[{t._keras_history[1]}][{t._keras_history[2]}]" for t in node.inputs]
            text[node.layer] = ", ".join(filter(None, [text.get(node.layer), *parts]))
        return {layer: text.get(layer, "-") for layer in self.layers}

    def __repr__(self):
        return (f"<Functional {self.name!r}: {len(self.inputs)} inputs, {len(self.outputs)} outputs, "
                f"{len(self.layers)} layers>")

    # ---- configuration -------------------------------------------------------------------------

    def _payload(self):
        """(config, arrays): everything needed to rebuild the model exactly; the nodes in running order, each
        as [layer name, [[source layer name, node index, 0], ...]], the node index counted within this model."""
        config, arrays = self._shared_payload()
        index, nodes = {}, []
        for layer in self.layers:
            if isinstance(layer, InputLayer):
                index[id(layer.output)] = [layer.name, 0, 0]
        calls = Counter()
        for node in self._nodes:
            nodes.append([node.layer.name, [index[id(t)] for t in node.inputs]])
            index[id(node.output)] = [node.layer.name, calls[node.layer], 0]
            calls[node.layer] += 1
        config.update({"layers": [ser.layer_config(layer) for layer in self.layers], "nodes": nodes,
                       "inputs": [index[id(t)] for t in self.inputs], "outputs": [index[id(t)] for t in self.outputs],
                       "single_input": self._single_input, "single_output": self._single_output})
        return {k: config[k] for k in self._fields}, arrays

    @classmethod
    def _from_config_fields(cls, config, arrays):
        ser.fields(config, "config", cls._fields)
        layers = config["layers"]
        if not isinstance(layers, list):
            raise ValueError(f"config.layers must be a list, got {layers!r}")
        classes, by_name = ser.subclasses(Layer), {}
        for i, entry in enumerate(layers):
            layer = ser.construct(classes, entry, f"config.layers[{i}]", "layer")
            if layer.name is None or layer.name in by_name:
                raise ValueError(f"config.layers[{i}]: layer names must be given and unique, got {layer.name!r}")
            by_name[layer.name] = layer
        tensors = {(name, 0): layer.output for name, layer in by_name.items() if isinstance(layer, InputLayer)}

        def tensor(ref, where):
            if not isinstance(ref, list) or len(ref) != 3 or (ref[0], ref[1]) not in tensors or ref[2] != 0:
                raise ValueError(f"{where} must be [layer name, node index, 0] of an earlier tensor, got {ref!r}")
            return tensors[ref[0], ref[1]]

        nodes, calls = ser.typed(config["nodes"], "config.nodes", list), Counter()
        for i, node in enumerate(nodes):
            where = f"config.nodes[{i}]"
            if not isinstance(node, list) or len(node) != 2 or node[0] not in by_name or \
                    isinstance(by_name[node[0]], InputLayer) or not isinstance(node[1], list):
                raise ValueError(f"{where} must be [name of a non-Input layer, [source tensors]], got {node!r}")
            layer = by_name[node[0]]
            sources = [tensor(ref, f"{where}[1][{j}]") for j, ref in enumerate(node[1])]
            try:
                out = layer(sources if layer.multi_input else sources[0] if len(sources) == 1 else sources)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: {e}") from None
            tensors[layer.name, calls[layer]] = out
            calls[layer] += 1
        inputs = [tensor(ref, f"config.inputs[{j}]") for j, ref in enumerate(ser.typed(config["inputs"],
                                                                                         "config.inputs", list))]
        outputs = [tensor(ref, f"config.outputs[{j}]") for j, ref in enumerate(ser.typed(config["outputs"],
                                                                                           "config.outputs", list))]
        single_in = ser.typed(config["single_input"], "config.single_input", bool)
        single_out = ser.typed(config["single_output"], "config.single_output", bool)
        if not ser.typed(config["built"], "config.built", bool):
            raise ValueError("config.built must be true: a Model is built when it is made")
        needed = sum(int(np.prod(s, dtype=object)) for layer in by_name.values() for _, s, _ in layer.weight_specs())
        try:
            dtype = np.dtype(ser.typed(config["dtype"], "config.dtype", str))
        except TypeError as e:
            raise ValueError(f"config.dtype: {e}") from None
        params = None if arrays is None else ser.array(arrays, "params", (needed,), dtype)
        if params is not None and not np.isfinite(params).all():
            raise ValueError("the array 'params' holds NaN or infinity")
        try:
            model = cls(inputs[0] if single_in and len(inputs) == 1 else inputs,
                        outputs[0] if single_out and len(outputs) == 1 else outputs,
                        name=ser.typed(config["name"], "config.name", str), seed=config["seed"], dtype=dtype.name)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config: {e}") from None
        if [layer.name for layer in model.layers] != list(by_name):
            raise ValueError(f"config.layers must list the graph's layers in its order "
                             f"{[layer.name for layer in model.layers]}, got {list(by_name)}")
        expected = set()
        if params is not None:
            model._params[...] = params
            expected.add("params")
        return model._restore(config, arrays, expected)



def _name_layers(layers):
    """Name each unnamed layer after its class, numbered past the names taken (dense, dense_1, ...); a name
    given twice is refused, as names identify layers in get_layer and in saved files."""
    taken = Counter(layer.name for layer in layers if layer.name is not None)
    repeated = [name for name, count in taken.items() if count > 1]
    if repeated:
        raise ValueError(f"the layer name {repeated[0]!r} is used {taken[repeated[0]]} times in the model; layer "
                         "names must be unique")
    for layer in layers:
        if layer.name is None:
            layer.name = layer.unique_default_name(taken)
            taken[layer.name] += 1


def _per_output(value, name, names, what):
    """value as a list in the order of `names` (the model's inputs or outputs) when it is a list, tuple or
    dict (by name) of one entry each; None when it is a single value, whose meaning the caller decides."""
    if isinstance(value, dict):
        unknown, missing = sorted(set(value) - set(names)), [n for n in names if n not in value]
        if unknown or missing:
            raise ValueError(f"{name} as a dict must have the {what} names {names} as keys" +
                             (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else ""))
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{name} must have one entry per model {what} {names}, got {len(value)}")
        return list(value)
    return None


def _structure(value, name, names, what, single):
    """x or y as a list of one array-like per input or output. A model made with a single tensor takes a
    single array-like (even a nested list of numbers); one made with a list takes a list or dict."""
    if single and not isinstance(value, dict):
        return [value]
    values = _per_output(value, name, names, what)
    if values is None:
        if len(names) != 1:
            raise ValueError(f"{name} must be a list or dict with one array per model {what} {names}, got "
                             f"{type(value).__name__}")
        values = [value]
    return values
