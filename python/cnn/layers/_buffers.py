"""Per-layer buffers reused across batches, so training allocates nothing per batch in these layers: what a
forward keeps for its backward, and the gradients of a layer outside a model (inside one they come from the
model's workspace, _workspace.py).

A buffer is kept at the largest batch seen and handed out as its leading slice, which is still
C-contiguous: a short last batch reuses it instead of reallocating."""
import numpy as np


def reuse(store, key, shape, dtype, zero=False):
    """store[key] viewed as `shape` (leading dimension <= the kept one); zero=True zeroes a new buffer only."""
    buf = store.get(key)
    if buf is not None and buf.shape == shape and buf.dtype is dtype:  # the steady state: same batch size
        return buf
    if buf is None or buf.dtype != dtype or buf.shape[1:] != tuple(shape[1:]) or buf.shape[0] < shape[0]:
        buf = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        store[key] = buf
    return buf[:shape[0]]
