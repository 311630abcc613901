"""Copy weights between a cnn.Sequential and a torch.nn.Module of the same architecture.

The layers with weights are paired by name when every one has a torch submodule of that (last) name, as
cnn.applications' twins do, else in order: torch.nn.Linear with Dense (cnn's kernel is (in, out), so it is
torch's weight transposed), torch.nn.Conv2d with Conv2D (both (out, in/groups, kh, kw)), torch.nn.ConvTranspose2d
with Conv2DTranspose (both (in, out, kh, kw)), torch.nn.BatchNorm1d/2d with BatchNormalization (weight, bias,
running_mean, running_var as gamma, beta, moving_mean, moving_variance), torch.nn.Embedding with Embedding (both
(num, dim)), and the one-layer, batch_first torch.nn.RNN, LSTM and GRU with SimpleRNN, LSTM and GRU
(bidirectional ones with Bidirectional, merge_mode 'concat'). A TimeDistributed layer pairs as the layer it
wraps. Recurrent weights: torch's weight_ih (g·U, IN) is the kernel transposed, weight_hh the recurrent kernel
transposed; torch adds two biases, b_ih + b_hh, where SimpleRNN and LSTM keep their sum (to_torch writes it to
b_ih and zeros b_hh) and the GRU keeps both, as the rows of its (2, 3U) bias. The gate blocks are in the same
order but for the GRU's: torch r, z, n against Keras z, r, h. Only parameters and running statistics move;
strides, padding, momentum, epsilon and activations are the caller's to match. torch is imported here, on use, so
`import cnn` never loads it."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .models import Sequential

__all__ = ["from_torch", "to_torch"]

_RECURRENT = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def _torch_kind(torch_module):
    import torch

    kinds = {torch.nn.Linear: "Dense", torch.nn.Conv2d: "Conv2D", torch.nn.Embedding: "Embedding",
             torch.nn.ConvTranspose2d: "Conv2DTranspose", torch.nn.BatchNorm1d: "BatchNormalization",
             torch.nn.BatchNorm2d: "BatchNormalization",
             torch.nn.RNN: "SimpleRNN", torch.nn.LSTM: "LSTM", torch.nn.GRU: "GRU"}
    return next((kind for cls, kind in kinds.items() if type(torch_module) is cls), None)


def _unwrap(layer):
    """The layer that holds the weights: TimeDistributed's inner layer; Bidirectional stays itself."""
    return layer.layer if type(layer).__name__ == "TimeDistributed" else layer


def _gate_order(layer, units):
    """Indices that reorder torch's gate blocks into Keras's (and back: the GRU's swap is its own inverse)."""
    if type(layer).__name__ != "GRU":
        return np.arange(layer.GATES * units)
    return np.r_[units:2 * units, 0:units, 2 * units:3 * units]


def _recurrent_from(layer, module, suffix):
    """cnn's [kernel, recurrent_kernel, (bias)] from torch's parameters of one direction."""
    get = lambda name: getattr(module, name + suffix).detach().cpu().double().numpy()  # noqa: E731
    order = _gate_order(layer, module.hidden_size)
    arrays = [get("weight_ih")[order].T, get("weight_hh")[order].T]
    if module.bias:
        b_ih, b_hh = get("bias_ih")[order], get("bias_hh")[order]
        arrays.append(np.stack([b_ih, b_hh]) if type(layer).__name__ == "GRU" else b_ih + b_hh)
    return arrays


def _recurrent_to(layer, weights, module, suffix):
    """torch's parameters of one direction, {name: array}, from cnn's weights."""
    order = _gate_order(layer, module.hidden_size)
    out = {"weight_ih": weights[0].T[order], "weight_hh": weights[1].T[order]}
    if module.bias:
        bias = weights[2]
        gru = type(layer).__name__ == "GRU"
        out["bias_ih"] = (bias[0] if gru else bias)[order]
        out["bias_hh"] = bias[1][order] if gru else np.zeros_like(bias)
    return {name + suffix: value for name, value in out.items()}


def _check_recurrent(layer, module):
    bidirectional = type(layer).__name__ == "Bidirectional"
    inner = layer.forward_layer if bidirectional else layer
    kind = type(inner).__name__
    if _RECURRENT.get(kind) != type(module).__name__:
        return (f"cannot pair cnn layer {layer.name!r} ({type(layer).__name__} of {kind}) with torch "
                f"{type(module).__name__}; SimpleRNN, LSTM and GRU pair with RNN, LSTM and GRU")
    if module.num_layers != 1 or not module.batch_first or module.bidirectional != bidirectional:
        return (f"torch {type(module).__name__} must have num_layers=1 and batch_first=True, and bidirectional="
                f"{bidirectional} to pair with cnn layer {layer.name!r}")
    if bidirectional and layer.merge_mode != "concat":
        return "a Bidirectional layer pairs with a bidirectional torch module only with merge_mode='concat'"
    if kind == "SimpleRNN" and module.nonlinearity != inner.activation.name:
        return (f"torch RNN's nonlinearity {module.nonlinearity!r} differs from cnn layer {layer.name!r}'s activation "
                f"{inner.activation.name!r}")
    return None


_TENSORS = ("weight", "bias", "running_mean", "running_var")  # a plain module's tensors in its layer's weight order


def _from(layer, module, kind):
    """cnn's weight arrays for `layer` from torch `module`."""
    if kind not in _RECURRENT and kind != "Bidirectional":
        arrays = [t.detach().cpu().double().numpy() for t in (getattr(module, n, None) for n in _TENSORS)
                  if t is not None]
        return [a.T if kind == "Dense" and i == 0 else a for i, a in enumerate(arrays)]
    if type(layer).__name__ == "Bidirectional":
        return (_recurrent_from(layer.forward_layer, module, "_l0")
                + _recurrent_from(layer.backward_layer, module, "_l0_reverse"))
    return _recurrent_from(layer, module, "_l0")


def _to(layer, module, kind):
    """{torch parameter name: array} for `module` from cnn `layer`."""
    weights = layer.weights
    if kind not in _RECURRENT and kind != "Bidirectional":
        names = [n for n in _TENSORS if getattr(module, n, None) is not None]
        return {n: w.T if kind == "Dense" and i == 0 else w for i, (n, w) in enumerate(zip(names, weights))}
    if type(layer).__name__ == "Bidirectional":
        k = len(layer.forward_layer.weights)
        return {**_recurrent_to(layer.forward_layer, weights[:k], module, "_l0"),
                **_recurrent_to(layer.backward_layer, weights[k:], module, "_l0_reverse")}
    return _recurrent_to(layer, weights, module, "_l0")


def _pairs(model, torch_module):
    """[(cnn layer, torch module, kind)] for the trainable layers of both, in order, with shapes checked."""
    import torch

    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(torch_module).__name__}")
    if not model.built:
        model.build()
    ours = [_unwrap(layer) for layer in model.layers if layer.weights]
    theirs, named = [], {}
    for name, module in torch_module.named_modules():
        if _torch_kind(module) is not None:
            theirs.append(module)
            named[name.rsplit(".", 1)[-1]] = module
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(f"torch module {name!r} ({type(module).__name__}) has parameters but is none of Linear, "
                             "Conv2d, ConvTranspose2d, BatchNorm1d/2d, Embedding, RNN, LSTM, GRU; cnn cannot map it")
    if len(named) == len(theirs) and all(layer.name in named for layer in ours):
        theirs = [named[layer.name] for layer in ours]  # a twin that names its modules as the layers: by name
    if len(ours) != len(theirs):
        raise ValueError(f"the cnn model has {len(ours)} layers with weights "
                         f"({', '.join(type(layer).__name__ for layer in ours)}), the torch module {len(theirs)} "
                         f"({', '.join(type(m).__name__ for m in theirs)})")
    pairs = []
    for layer, module in zip(ours, theirs):
        kind = type(layer).__name__
        theirs_kind = _torch_kind(module)
        problem = None
        if kind in ("Bidirectional", *_RECURRENT) and theirs_kind in _RECURRENT:
            problem = _check_recurrent(layer, module)
        elif kind != theirs_kind:
            problem = (f"cannot pair cnn layer {layer.name!r} ({kind}) with torch {type(module).__name__}; "
                       "Dense pairs with Linear, Conv2D with Conv2d, Conv2DTranspose with ConvTranspose2d, "
                       "BatchNormalization with BatchNorm1d/2d, Embedding with Embedding, SimpleRNN, LSTM and GRU "
                       "with RNN, LSTM and GRU")
        if problem:
            raise ValueError(problem)
        shapes = [a.shape for a in _from(layer, module, kind)]
        ours_shapes = [w.shape for w in layer.weights]
        if ours_shapes != shapes:
            raise ValueError(f"cnn layer {layer.name!r} ({kind}) has weight shapes {ours_shapes}, torch "
                             f"{type(module).__name__} gives {shapes} (as cnn lays them out; a missing bias "
                             "counts too)")
        pairs.append((layer, module, kind))
    return pairs


def from_torch(model: Sequential, torch_module: torch.nn.Module) -> Sequential:
    """Set the weights of `model` (a cnn.Sequential) from `torch_module`; returns model."""
    for layer, module, kind in _pairs(model, torch_module):
        for w, new in zip(layer.weights, _from(layer, module, kind)):
            w[...] = new
    return model


def to_torch(model: Sequential, torch_module: torch.nn.Module) -> torch.nn.Module:
    """Set the parameters of `torch_module` from `model` (a cnn.Sequential); returns torch_module."""
    import torch

    with torch.no_grad():
        for layer, module, kind in _pairs(model, torch_module):
            for name, value in _to(layer, module, kind).items():
                getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return torch_module
