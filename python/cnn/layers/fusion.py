"""A ReLU taken over by the layer next to it in training and inference (issue 20): one pass over a batch-sized
array fewer each way, the results the same bits as the unfused pair's (tests/test_fusion.py).

Three pairs, where the first layer's output has no other reader:
- "pool": a Conv2D with a relu activation, then a 2x2 stride-2 MaxPooling2D (the CIFAR convnets). The Conv2D stops
  at its pre-activation (logits=True), the pool pools relu of it and keeps, per window, whether the ReLU let the
  gradient through; its backward gives the Conv2D the gradient through both.
- "bn": a BatchNormalization, then a plain ReLU layer (ResNet's conv-BN-ReLU). The BatchNormalization writes
  relu(bn(x)) (relu=True) and its backward takes the ReLU's mask from that output; the ReLU layer does not run.
  Inference folds a BatchNormalization into the Conv2D before it where it can (normalization.foldable); such a
  one is not fused.
- "add": an Add, then a plain ReLU layer (ResNet's block output), in Model graphs: as "bn", the Add writes relu of
  the sum and its backward hands every input the gradient through the ReLU."""
from .. import _core
from .activation import ReLU
from .conv import Conv2D
from .merge import Add
from .normalization import BatchNormalization, foldable
from .pooling import MaxPooling2D

__all__ = ["relu_fusion", "chain_steps"]


def relu_fusion(first, second):
    """'pool', 'bn' or 'add' (see above) when `second`, reading `first`'s output alone, can take over a ReLU with it."""
    if (isinstance(first, Conv2D) and first.activation.code == _core.ACT_RELU and type(second) is MaxPooling2D
            and second.tiles()):
        return "pool"
    if type(second) is ReLU and second.max_value is None and second.negative_slope == 0 and second.threshold == 0:
        return "bn" if type(first) is BatchNormalization else "add" if type(first) is Add else None
    return None


def chain_steps(layers, training):
    """[(index, layer, keyword arguments of its forward)] for a pass over a chain of layers, fused: in training and at
    inference the pairs of relu_fusion (a ReLU layer taken over by the layer before it is left out);
    at inference first a Conv2D or Dense with the BatchNormalization after it folded in (params, the
    BatchNormalization left out). The last layer is never fused away: the loss may want its logits."""
    steps, i, last = [], 0, len(layers) - 1
    while i <= last:
        layer, nxt = layers[i], layers[i + 1] if i < last else None
        if not training and nxt is not None and foldable(layer, nxt):
            steps.append((i, layer, {"params": nxt.folded(layer)}))
            i += 2
            continue
        kind = relu_fusion(layer, nxt) if nxt is not None and i + 1 < last else None
        if kind == "pool":
            steps += [(i, layer, {"logits": True}), (i + 1, nxt, {"relu": True})]
        elif kind in ("bn", "add"):
            steps.append((i, layer, {"relu": True}))
        else:
            steps.append((i, layer, {}))
            i += 1
            continue
        i += 2
    return steps
