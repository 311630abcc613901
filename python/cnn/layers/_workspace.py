"""The gradient buffers a model's layers share in a backward pass, instead of each keeping its own.

A layer's input gradient is dead once the layer below has consumed it, yet each layer used to keep its dz
and dx between steps: at batch 256 the CIFAR convnet of benchmark B10 held 130 MB of them. A model keeps
one Workspace: a layer's backward takes its buffers from it, and after each layer the model frees every
slot that no pending gradient lies in. The slots stay allocated between steps (a fresh batch-sized buffer
per step costs its page faults again), and the k-th take of a pass gets the slot it got in the last pass:
the passes repeat, so that slot is free again, and a chain needs two (the gradient coming in and the one
going out, each as large as the largest it ever holds). Best fit without that memory would hand a small
gradient the large slot and grow the small one.

A layer may also write over its incoming gradient (activations' backward kernels allow dx = dy) when the
model lends it: the gradient lies in a slot and no pending gradient shares that slot.

A layer outside a model (called directly, or inside a wrapper) keeps its own buffers, as before."""
import math

import numpy as np

from ._buffers import reuse


class Workspace:
    def __init__(self):
        self._slots = []  # 1-D uint8 arrays, grown when a take needs more
        self._busy = {}  # slot index -> array, for the slots a live gradient lies in
        self._plan = []  # per take of the last pass: [slot, the view handed out (None once the slot grew)]
        self._count = 0  # takes so far in this pass
        self._lent = None  # the incoming gradient the running backward may overwrite
        self._scratch = None

    def begin(self):
        """A backward pass starts: every slot is free."""
        self._busy.clear()
        self._count = 0
        self._lent = None

    def take(self, shape, dtype):
        """An uninitialised C-contiguous array, valid until collect finds no live gradient in it."""
        k, self._count = self._count, self._count + 1
        planned = self._plan[k] if k < len(self._plan) and self._plan[k][0] not in self._busy else None
        if planned is not None:  # the steady state: this take's slot of the last pass, often the same view
            view = planned[1]
            if view is not None and view.shape == shape and view.dtype == dtype:
                self._busy[planned[0]] = self._slots[planned[0]]
                return view
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        slot = self._pick(nbytes) if planned is None else planned[0]
        if self._slots[slot].size < nbytes:
            for entry in self._plan:  # their views would keep the old array alive
                if entry[0] == slot:
                    entry[1] = None
            # the old array goes before the new one comes (an empty one meanwhile: an interrupt leaves a slot)
            self._slots[slot] = np.empty(0, np.uint8)
            self._slots[slot] = np.empty(nbytes, np.uint8)
        view = self._slots[slot][:nbytes].view(dtype).reshape(shape)
        if k < len(self._plan):
            self._plan[k] = [slot, view]
        else:
            self._plan.append([slot, view])
        self._busy[slot] = self._slots[slot]
        return view

    def _pick(self, nbytes):
        """A free slot: the smallest that holds nbytes, else the largest (to grow), else a new one."""
        free = [i for i in range(len(self._slots)) if i not in self._busy]
        fits = [i for i in free if self._slots[i].size >= nbytes]
        if fits:
            return min(fits, key=lambda i: self._slots[i].size)
        if free:
            return max(free, key=lambda i: self._slots[i].size)
        self._slots.append(np.empty(0, np.uint8))
        return len(self._slots) - 1

    def lend(self, dy, pending=()):
        """The next backward may overwrite dy if it lies in a slot that no pending gradient shares."""
        self._lent = None
        for buf in self._busy.values():
            if np.may_share_memory(dy, buf):
                if dy.flags.c_contiguous and not any(np.may_share_memory(p, buf) for p in pending):
                    self._lent = dy
                return

    def over(self, dy, shape, dtype):
        """dy itself if the model lent it (dy the backward's incoming gradient, or a reshape of it) and it is a
        C-contiguous (shape, dtype) array; else a take."""
        lent = self._lent
        if (lent is not None and dy.base is lent.base and dy.nbytes == lent.nbytes and dy.shape == shape
                and dy.dtype == dtype and dy.flags.c_contiguous):
            self._lent = None
            return dy
        return self.take(shape, dtype)

    def collect(self, live):
        """Frees every busy slot that none of the arrays in `live` lies in; ends any lending."""
        self._lent = None
        kept = {}
        for i, buf in self._busy.items():
            for a in live:
                if a is not None and np.may_share_memory(a, buf):
                    kept[i] = buf
                    break
        self._busy = kept

    def add(self, a, b):
        """a + b in a taken buffer (the sum of a gradient two consumers sent back)."""
        out = self.take(a.shape, a.dtype)
        np.add(a, b, out=out)
        return out

    def scratch(self, size, dtype):
        """A kernel's workspace for one call: one buffer for the whole model, at the largest size asked."""
        dtype = np.dtype(dtype)
        nbytes = size * dtype.itemsize
        if self._scratch is None or self._scratch.size < nbytes:
            self._scratch = None
            self._scratch = np.empty(nbytes, np.uint8)
        return self._scratch[:nbytes].view(dtype)


def workspace(layer):
    """The workspace of the layer's model, or None for a layer outside a model."""
    return getattr(layer.model, "_workspace", None)


def gradient(layer, key, shape, dtype, over=None):
    """A buffer for a gradient the layer's backward writes: from its model's workspace (over `over`, the
    incoming gradient, when the model lent it), or the layer's own buffer `key` outside a model."""
    ws = workspace(layer)
    if ws is None:
        return reuse(layer._buffers, key, shape, dtype)
    return ws.take(shape, dtype) if over is None else ws.over(over, shape, dtype)


def scratch(layer, size, dtype):
    """A kernel's scratch for one call: the model's shared one, or the layer's own outside a model."""
    ws = workspace(layer)
    return reuse(layer._buffers, "scratch", (size,), dtype) if ws is None else ws.scratch(size, dtype)
