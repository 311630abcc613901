"""Symbolic tensors and the nodes that connect them: what `layer(x)` records for cnn.Model, as Keras does.

`Input(shape)` returns a KerasTensor; calling a layer on KerasTensors adds a Node to the layer's
`_inbound_nodes` (one per call: a layer called twice is shared, with one set of weights) and returns the
node's output KerasTensor. No array is computed: Model(inputs, outputs) walks these records back from the
outputs to order the layers and run them."""
from __future__ import annotations


class KerasTensor:
    """The output of a layer call: its shape, None for the batch, and where it came from (`_keras_history`:
    the layer, the index of the call among the layer's nodes, and 0, as each cnn layer has one output)."""

    def __init__(self, shape, layer, node_index):
        self.shape = (None,) + tuple(shape)
        self._keras_history = (layer, node_index, 0)

    @property
    def name(self):
        layer, node_index, _ = self._keras_history
        return layer.name if node_index == 0 else f"{layer.name}_{node_index}"

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, name={self.name}>"


class Node:
    """One call of a layer: the tensors it read and the tensor it made."""

    def __init__(self, layer, inputs):
        self.layer = layer
        self.inputs = list(inputs)
        self.index = len(layer._inbound_nodes)
        self.output = KerasTensor(layer.output_shape, layer, self.index)
        layer._inbound_nodes.append(self)

    @property
    def is_input(self):
        return not self.inputs

    @property
    def parents(self):
        return [t._keras_history[0]._inbound_nodes[t._keras_history[1]] for t in self.inputs]
