"""Copy weights between a cnn.Sequential and a torch.nn.Module of the same architecture.

The layers with weights are paired by name when every one has a torch submodule of that (last) name, as
cnn.applications' twins do, else in order: torch.nn.Linear with Dense (cnn's kernel is (in, out), so it
is torch's weight transposed), torch.nn.Conv2d with Conv2D (both (out, in/groups, kh, kw)),
torch.nn.ConvTranspose2d with Conv2DTranspose (both (in, out, kh, kw)) and torch.nn.BatchNorm1d/2d with
BatchNormalization (weight, bias, running_mean, running_var as gamma, beta, moving_mean, moving_variance).
Only parameters and running statistics move; strides, padding, momentum, epsilon and activations are the
caller's to match. torch is imported here,
on use, so `import cnn` never loads it."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .models import Sequential

__all__ = ["from_torch", "to_torch"]


def _pairs(model, torch_module):
    """[(cnn layer, torch module, kind)] for the trainable layers of both, in order, with shapes checked."""
    import torch

    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(torch_module).__name__}")
    if not model.built:
        model.build()
    ours = [layer for layer in model.layers if layer.weights]
    kinds = _torch_kinds()
    known = tuple(t for types in kinds.values() for t in types)
    theirs, named = [], {}
    for name, module in torch_module.named_modules():
        if isinstance(module, known):
            theirs.append(module)
            named[name.rsplit(".", 1)[-1]] = module
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(f"torch module {name!r} ({type(module).__name__}) has parameters but is none of "
                             f"{', '.join(t.__name__ for t in known)}; cnn cannot map it")
    if len(named) == len(theirs) and all(layer.name in named for layer in ours):
        theirs = [named[layer.name] for layer in ours]  # a twin that names its modules as the layers: by name
    if len(ours) != len(theirs):
        raise ValueError(f"the cnn model has {len(ours)} layers with weights "
                         f"({', '.join(type(layer).__name__ for layer in ours)}), the torch module {len(theirs)} "
                         f"({', '.join(type(m).__name__ for m in theirs)})")
    pairs = []
    for layer, module in zip(ours, theirs):
        kind = type(layer).__name__
        wanted = kinds.get(kind, ())
        if not isinstance(module, wanted):
            raise ValueError(f"cannot pair cnn layer {layer.name!r} ({kind}) with torch {type(module).__name__}; "
                             "Dense pairs with Linear, Conv2D with Conv2d, Conv2DTranspose with ConvTranspose2d "
                             "and BatchNormalization with BatchNorm1d/2d")
        shapes = [tuple(t.T.shape) if kind == "Dense" and i == 0 else tuple(t.shape)
                  for i, t in enumerate(_tensors(module))]
        ours_shapes = [w.shape for w in layer.weights]
        if ours_shapes != shapes:
            raise ValueError(f"cnn layer {layer.name!r} ({kind}) has weight shapes {ours_shapes}, torch "
                             f"{type(module).__name__} gives {shapes} (as cnn lays them out; a missing bias "
                             "counts too)")
        pairs.append((layer, module, kind))
    return pairs


def _torch_kinds():
    """cnn layer type name → the torch module types it pairs with."""
    import torch

    nn = torch.nn
    return {"Dense": (nn.Linear,), "Conv2D": (nn.Conv2d,), "Conv2DTranspose": (nn.ConvTranspose2d,),
            "BatchNormalization": (nn.BatchNorm1d, nn.BatchNorm2d)}


def _tensors(module):
    """The module's tensors in the order of the paired cnn layer's weights (torch's layout)."""
    names = ("weight", "bias", "running_mean", "running_var")
    return [t for t in (getattr(module, name, None) for name in names) if t is not None]


def from_torch(model: Sequential, torch_module: torch.nn.Module) -> Sequential:
    """Set the weights of `model` (a cnn.Sequential) from `torch_module`; returns model."""
    for layer, module, kind in _pairs(model, torch_module):
        for i, (w, t) in enumerate(zip(layer.weights, _tensors(module))):
            value = t.detach().cpu().double().numpy()
            w[...] = value.T if kind == "Dense" and i == 0 else value
    return model


def to_torch(model: Sequential, torch_module: torch.nn.Module) -> torch.nn.Module:
    """Set the parameters and running statistics of `torch_module` from `model` (a cnn.Sequential); returns
    torch_module."""
    import torch

    with torch.no_grad():
        for layer, module, kind in _pairs(model, torch_module):
            for i, (w, t) in enumerate(zip(layer.weights, _tensors(module))):
                t.copy_(torch.from_numpy(np.ascontiguousarray(w.T if kind == "Dense" and i == 0 else w)))
    return torch_module
