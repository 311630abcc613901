"""ONNX export: `cnn.onnx.export(model, path)` writes a Sequential model as a standard ONNX graph (opset 17),
for onnxruntime and the other tools models are deployed with. Needs the optional extra:
`pip install "cnn[onnx]"` (onnx and onnxruntime); `import cnn` never loads onnx.

The graph's input is 'input', of shape (batch, *model.input_shape) with a symbolic batch, and its output
'output' is what model.predict returns (probabilities after a softmax). Images stay NCHW, ONNX's own
layout, so Flatten is ONNX's Flatten (C, H, W order, as cnn's) and no transpose is needed. Layer by layer:
Dense -> Gemm (MatMul + Add for inputs of rank > 2; cnn's kernel is (in, out), Gemm's B as is);
Conv2D -> Conv (pads, strides, dilations, group); MaxPooling2D -> MaxPool; AveragePooling2D ->
AveragePool (count_include_pad=0 for 'same', as cnn and Keras; 1 for integer padding, as PyTorch);
ZeroPadding2D -> Pad; Flatten -> Flatten; Dropout -> nothing (inference is the identity); activations ->
Relu, Sigmoid, Tanh, LeakyRelu, Softmax/LogSoftmax over the last axis, and scaled tanh as a·Tanh(s·x).
A layer or activation with no ONNX form raises ValueError naming it."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._types import PathLike
    from .models import Sequential

__all__ = ["export", "OPSET", "INSTALL"]

OPSET = 17
IR_VERSION = 8  # the IR that opset 17 came with: the file loads in onnxruntime 1.13 and later
INSTALL = 'pip install "cnn[onnx]"  (or: pip install onnx onnxruntime)'


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(f"cnn.onnx.export needs the onnx package: {INSTALL}") from None
    return onnx


class _Graph:
    """Nodes and weights appended in order; each step reads the previous output name and returns its own."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers, self.count = onnx, [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, value, hint, dtype):
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _activation(g, x, act, hint, dtype):
    name = act.name
    if name == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if name in simple:
        return g.node(simple[name], [x], hint)
    if name == "leaky_relu":
        return g.node("LeakyRelu", [x], hint, alpha=float(act.alpha))
    if name in ("softmax", "log_softmax"):
        return g.node("Softmax" if name == "softmax" else "LogSoftmax", [x], hint, axis=-1)
    if name == "scaled_tanh":  # a·tanh(s·x)
        inner = g.node("Mul", [x, g.constant(act.beta, f"{hint}_s", dtype)], f"{hint}_scale_in")
        return g.node("Mul", [g.node("Tanh", [inner], f"{hint}_tanh"), g.constant(act.alpha, f"{hint}_a", dtype)],
                      hint)
    raise ValueError(f"activation {name!r} has no ONNX form in cnn.onnx.export")


def _pads(pads):
    """cnn's (top, bottom, left, right) as ONNX's [top, left, bottom, right]."""
    top, bottom, left, right = pads
    return [int(top), int(left), int(bottom), int(right)]


def _layer(g, x, layer, dtype):
    kind, hint = type(layer).__name__, layer.name
    if kind == "Dense":
        kernel = g.constant(layer.weights[0], f"{hint}_kernel", dtype)
        bias = [g.constant(layer.weights[1], f"{hint}_bias", dtype)] if layer.use_bias else []
        if len(layer.input_shape) == 1:
            z = g.node("Gemm", [x, kernel] + bias, f"{hint}_gemm")
        else:
            z = g.node("MatMul", [x, kernel], f"{hint}_matmul")
            z = g.node("Add", [z] + bias, f"{hint}_add") if bias else z
        return _activation(g, z, layer.activation, hint, dtype)
    if kind == "Conv2D":
        inputs = [x, g.constant(layer.weights[0], f"{hint}_kernel", dtype)]
        if layer.use_bias:
            inputs.append(g.constant(layer.weights[1], f"{hint}_bias", dtype))
        z = g.node("Conv", inputs, f"{hint}_conv", kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                   pads=_pads(layer.pads), dilations=list(layer.dilation_rate), group=int(layer.groups))
        return _activation(g, z, layer.activation, hint, dtype)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        attrs = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides), "pads": _pads(layer.pads)}
        if kind == "MaxPooling2D":
            return g.node("MaxPool", [x], hint, **attrs)
        return g.node("AveragePool", [x], hint, count_include_pad=int(layer._include_pad()), **attrs)
    if kind == "Activation":
        return _activation(g, x, layer.activation, hint, dtype)
    if kind == "Flatten":
        return g.node("Flatten", [x], hint, axis=1)
    if kind == "Dropout":
        return x
    if kind == "ZeroPadding2D":
        top, bottom, left, right = layer.pads
        pads = g.constant([0, 0, top, left, 0, 0, bottom, right], f"{hint}_pads", np.int64)
        return g.node("Pad", [x, pads], hint, mode="constant")
    raise ValueError(f"layer {layer.name!r} ({kind}) has no ONNX form in cnn.onnx.export; supported: Dense, Conv2D, "
                     "MaxPooling2D, AveragePooling2D, Activation, Flatten, Dropout, ZeroPadding2D")


def to_model_proto(model: Sequential):
    """The model as an onnx.ModelProto (checked by onnx.checker), built first if only its input size is known."""
    from .models import Sequential

    onnx = _onnx()
    if not isinstance(model, Sequential):
        raise TypeError(f"cnn.onnx.export takes a cnn Sequential model, got {type(model).__name__}")
    if not model.built:
        model.build()  # raises, saying how to give the input size, when it is unknown
    dtype = model.dtype
    elem = {np.dtype(np.float32): onnx.TensorProto.FLOAT, np.dtype(np.float64): onnx.TensorProto.DOUBLE}[dtype]
    g = _Graph(onnx)
    x = "input"
    for layer in model.layers:
        x = _layer(g, x, layer, dtype)
    x = g.node("Identity", [x], "output_identity") if x == "input" else x
    g.nodes[-1].output[0] = "output"  # the last node writes the graph output under its public name
    helper = onnx.helper
    graph = helper.make_graph(
        g.nodes, model.name,
        [helper.make_tensor_value_info("input", elem, ["batch"] + list(model.input_shape))],
        [helper.make_tensor_value_info("output", elem, ["batch"] + list(model.output_shape))],
        g.initializers)
    proto = helper.make_model(graph, producer_name="cnn", opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def export(model: Sequential, path: PathLike) -> None:
    """Write `model` to `path` as an ONNX file (see the module docstring for the mapping)."""
    onnx = _onnx()
    proto = to_model_proto(model)
    onnx.save(proto, os.fspath(path))
