"""Copy weights between a cnn.Sequential and a torch.nn.Module of the same architecture.

The trainable layers are paired in order: torch.nn.Linear with Dense (cnn's kernel is (in, out), so it
is torch's weight transposed) and torch.nn.Conv2d with Conv2D (both (out, in/groups, kh, kw)). Only
parameters move; strides, padding and activations are the caller's to match. torch is imported here,
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
    theirs = []
    for name, module in torch_module.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            theirs.append(module)
        elif any(True for _ in module.parameters(recurse=False)):
            raise ValueError(f"torch module {name!r} ({type(module).__name__}) has parameters but is neither "
                             "Linear nor Conv2d; cnn cannot map it")
    if len(ours) != len(theirs):
        raise ValueError(f"the cnn model has {len(ours)} layers with weights "
                         f"({', '.join(type(layer).__name__ for layer in ours)}), the torch module {len(theirs)} "
                         f"({', '.join(type(m).__name__ for m in theirs)})")
    pairs = []
    for layer, module in zip(ours, theirs):
        kind = type(layer).__name__
        wanted = {"Dense": torch.nn.Linear, "Conv2D": torch.nn.Conv2d}.get(kind)
        if wanted is None or not isinstance(module, wanted):
            raise ValueError(f"cannot pair cnn layer {layer.name!r} ({kind}) with torch {type(module).__name__}; "
                             "Dense pairs with Linear and Conv2D with Conv2d")
        weight = module.weight.detach()
        shapes = [tuple(weight.T.shape) if kind == "Dense" else tuple(weight.shape)]
        if module.bias is not None:
            shapes.append(tuple(module.bias.shape))
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
        weight = module.weight.detach().cpu().double().numpy()
        layer.weights[0][...] = weight.T if kind == "Dense" else weight
        if module.bias is not None:
            layer.weights[1][...] = module.bias.detach().cpu().double().numpy()
    return model


def to_torch(model: Sequential, torch_module: torch.nn.Module) -> torch.nn.Module:
    """Set the parameters of `torch_module` from `model` (a cnn.Sequential); returns torch_module."""
    import torch

    with torch.no_grad():
        for layer, module, kind in _pairs(model, torch_module):
            weight = np.ascontiguousarray(layer.weights[0].T if kind == "Dense" else layer.weights[0])
            module.weight.copy_(torch.from_numpy(weight))
            if module.bias is not None:
                module.bias.copy_(torch.from_numpy(np.ascontiguousarray(layer.weights[1])))
    return torch_module
