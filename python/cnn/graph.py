"""The layer graph behind cnn.Model: from the output tensors back to the inputs, in Keras's order.

`map_graph` follows Keras's functional.map_graph: a depth-first walk from the outputs gives the nodes in
an order that runs inputs before their consumers; a layer's depth is the longest path from it to an
output, and the model's layers are listed deepest first, ties in the order the walk met them (so
`model.layers`, and with it get_weights, is in Keras's order)."""
from __future__ import annotations

import copy
from collections import Counter

from .layers.fusion import relu_fusion
from .layers.input_layer import InputLayer
from .layers.normalization import foldable
from .layers.node import KerasTensor

__all__ = ["map_graph", "check_tensors", "Plan"]


def check_tensors(value, name):
    """A tensor or a list/tuple of tensors as a non-empty list, or TypeError naming `name`."""
    tensors = list(value) if isinstance(value, (list, tuple)) else [value]
    if not tensors:
        raise ValueError(f"{name} must name at least one tensor, got an empty {type(value).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, KerasTensor):
            where = name if len(tensors) == 1 and not isinstance(value, (list, tuple)) else f"{name}[{i}]"
            raise TypeError(f"{where} must be a symbolic tensor from cnn.layers.Input or a layer call, got "
                            f"{type(t).__name__}: {t!r}")
    return tensors


def _walk(inputs, outputs):
    """(nodes from inputs to outputs, layer -> index at which the walk first met it)."""
    done, order, first_seen = set(), [], {}
    input_ids = {id(t) for t in inputs}

    def visit(tensor, path):
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        if node in done:
            return
        first_seen.setdefault(layer, len(first_seen))
        if id(tensor) not in input_ids:
            if node.is_input:
                names = [t.name for t in inputs]
                raise ValueError(f"Graph disconnected: output {path!r} depends on the Input {layer.name!r}, which is "
                                 f"not among the model's inputs {names}; pass it in inputs=")
            for parent in node.inputs:
                visit(parent, path)
        done.add(node)
        order.append(node)

    for out in outputs:
        visit(out, out.name)
    return order, first_seen


def map_graph(inputs, outputs):
    """(layers in Keras's order, the layer-calling nodes in running order) of the graph from `inputs` to
    `outputs`; ValueError for an output that needs an input not given, or an input given twice."""
    for i, t in enumerate(inputs):
        if not t._keras_history[0]._inbound_nodes[t._keras_history[1]].is_input:
            raise ValueError(f"inputs[{i}] must come straight from cnn.layers.Input, got the output of layer "
                             f"{t._keras_history[0].name!r}")
    if len({id(t) for t in inputs}) != len(inputs):
        raise ValueError("inputs name the same Input more than once")
    nodes, first_seen = _walk(inputs, outputs)
    for t in inputs:  # an input no output needs is still a model input, as in Keras
        first_seen.setdefault(t._keras_history[0], -1)
    depth, layer_depth = {}, {}
    for node in reversed(nodes):
        d = max(depth.setdefault(node, 0), layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = depth[node] = d
        for parent in node.parents:
            depth[parent] = max(depth.get(parent, 0), d + 1)
    for t in inputs:
        layer_depth.setdefault(t._keras_history[0], 0)
    layers = sorted(layer_depth, key=lambda layer: (-layer_depth[layer], first_seen[layer]))
    return layers, [node for node in nodes if not isinstance(node.layer, InputLayer)]


def _twin(layer):
    """Another caller of a shared layer: the same weight and gradient views, its own per-call state (a layer
    keeps its buffers in dicts, and rebinds its other per-call attributes on each call)."""
    twin = copy.copy(layer)
    for key, value in list(vars(twin).items()):
        if isinstance(value, dict) and key != "_init_args":
            setattr(twin, key, {})
    return twin


class Plan:
    """The nodes of a built graph as steps to run: forward from the inputs' arrays, backward from the
    outputs' gradients. Each call of a layer runs on its own object (the layer for its first call, a twin
    for the others), so calls of a shared layer keep their own caches; their gradients add up in the
    layer's slice of the model's gradient buffer. Gradients of a tensor that feeds several calls are summed."""

    def __init__(self, inputs, outputs, nodes):
        self.input_ids = [id(t) for t in inputs]
        self.output_ids = [id(t) for t in outputs]
        inputs_set, seen, self.steps = set(self.input_ids), set(), []
        for node in nodes:
            runner = _twin(node.layer) if node.layer in seen else node.layer
            seen.add(node.layer)
            sources = [id(t) for t in node.inputs]
            need_dx = any(s not in inputs_set for s in sources)
            self.steps.append((runner, sources, id(node.output), node.layer.multi_input, need_dx))
        self.inputs_set = inputs_set
        self.folds = self._folds()
        self.fusions = self._fusions()

    def _single_readers(self):
        """{a step's output id: the index of the step that reads it} for outputs read by exactly one step and not
        model outputs."""
        readers = Counter(s for _, sources, _, _, _ in self.steps for s in sources)
        readers.update(self.output_ids)
        return {s: j for j, (_, sources, _, _, _) in enumerate(self.steps) for s in sources if readers[s] == 1}

    def _fusions(self):
        """{index of a step: (index of the step that reads its output alone, relu_fusion's kind)}: pairs in which
        one takes over a ReLU (layers/fusion.py), in training and at inference (where a fold absorbs the
        BatchNormalization of a "bn" pair, that pair is not fused)."""
        reader, fusions = self._single_readers(), {}
        for i, (first, _, out, _, _) in enumerate(self.steps):
            j = reader.get(out)
            kind = None if j is None or self.steps[j][3] else relu_fusion(first, self.steps[j][0])
            if kind:
                fusions[i] = (j, kind)
        return fusions

    def _folds(self):
        """{index of a Conv2D or Dense step: index of the BatchNormalization step that is its output's only
        reader}: inference runs the pair as one call with the normalisation folded into the kernel and bias, as
        Sequential does. An output that is also a model output, or read by anything else, is not folded."""
        readers = Counter(s for _, sources, _, _, _ in self.steps for s in sources)
        readers.update(self.output_ids)
        step_of = {out: i for i, (_, _, out, _, _) in enumerate(self.steps)}
        folds = {}
        for j, (bn, sources, _, multi, _) in enumerate(self.steps):
            i = step_of.get(sources[0])
            if not multi and i is not None and readers[sources[0]] == 1 and foldable(self.steps[i][0], bn):
                folds[i] = j
        return folds

    def forward(self, xs, training, logit_ids=()):
        """The outputs' arrays; the outputs in logit_ids stop before their layer's activation. Inference
        (training False) runs each folded Conv2D/Dense + BatchNormalization pair as one call; both run the ReLU
        fusions (a ReLU a BatchNormalization or an Add takes over does not run: its output is theirs)."""
        values = dict(zip(self.input_ids, xs))
        folds = {} if training else self.folds
        absorbed = set(folds.values())
        fusions = {i: f for i, f in self.fusions.items() if i not in absorbed}
        kwargs = {}
        for i, (j, kind) in fusions.items():
            if kind == "pool":
                kwargs[i], kwargs[j] = {"logits": True}, {"relu": True}
            else:  # "bn", "add": the first writes the ReLU's output, which does not run
                kwargs[i] = {"relu": True}
                absorbed.add(j)
        for i, (runner, sources, out, multi, _) in enumerate(self.steps):
            if i in absorbed:
                continue
            x = [values[s] for s in sources] if multi else values[sources[0]]
            if i in folds:
                bn, _, bn_out, _, _ = self.steps[folds[i]]
                values[bn_out] = runner.forward(x, params=bn.folded(runner))
            elif out in logit_ids:
                values[out] = runner.forward(x, training=training, logits=True)
            else:
                values[out] = runner.forward(x, training=training, **kwargs.get(i, {}))
            if i in fusions and fusions[i][1] != "pool":
                values[self.steps[fusions[i][0]][2]] = values[out]
        return [values[o] for o in self.output_ids]

    def backward(self, douts, ws):
        """Every layer's gradients (into the model's gradient buffer) from the outputs' gradients, the
        layers' buffers from the workspace ws: a gradient's slot is freed once no pending gradient lies in it,
        and a layer may write over its incoming gradient when no other pending gradient shares its slot."""
        ws.begin()
        try:
            grads = {}
            for o, d in zip(self.output_ids, douts):
                grads[o] = d if o not in grads else ws.add(grads[o], d)
            taken = {j: self.steps[i][2] for i, (j, kind) in self.fusions.items() if kind != "pool"}
            for j, (runner, sources, out, multi, need_dx) in reversed(list(enumerate(self.steps))):
                if j in taken:  # a ReLU its BatchNormalization or Add took over: the gradient goes to it as it is
                    grads[taken[j]] = grads.pop(out)
                    continue
                dy = grads.pop(out)
                ws.lend(dy, grads.values())
                dx = runner.backward(dy, need_dx=need_dx)
                if need_dx:
                    for s, d in zip(sources, dx if multi else (dx,)):
                        if s not in self.inputs_set:
                            grads[s] = d if s not in grads else ws.add(grads[s], d)
                ws.collect(grads.values())
        finally:
            ws.end()
