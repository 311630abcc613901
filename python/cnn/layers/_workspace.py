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

A layer outside a model's backward pass (outside a model, inside a wrapper, or a model's layer whose backward the
user calls directly) keeps its own buffers, as before: slots are freed only within a pass, so takes outside one
would grow the workspace for good, and a next step would write over the gradient handed to the user."""
import math
import threading

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
        self._thread = None  # the thread running the model's backward pass (begin ... end), else None

    def begin(self):
        """A backward pass starts: every slot is free."""
        self._busy.clear()
        self._count = 0
        self._lent = None
        self._thread = threading.get_ident()

    def end(self):
        """The pass is over (or was interrupted): nothing is lent, and takes stop until the next begin."""
        self._thread = None
        self._busy.clear()
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

    def _slot_of(self, a):
        """The busy slot that array a lies in, or None. A view's base is the array that owns its memory, so
        a take (or a reshape of one) is found by identity; anything else by the memory it spans."""
        base = a.base
        for i, buf in self._busy.items():
            if base is buf:
                return i
        for i, buf in self._busy.items():
            if np.may_share_memory(a, buf):
                return i
        return None

    def serves(self):
        """Whether the caller runs inside the model's backward pass: a direct call of a layer's backward,
        between passes or from another thread while one runs, must not take the pass's slots."""
        return self._thread == threading.get_ident()

    def lend(self, dy, pending=()):
        """The next backward may overwrite dy if it lies in a slot that no pending gradient shares."""
        slot = self._slot_of(dy)
        self._lent = dy if slot is not None and all(self._slot_of(p) != slot for p in pending) else None

    def chain(self, dx):
        """For a chain of layers, after each backward: frees every slot but dx's (None: every slot), and lends
        dx to the next backward, its one reader (collect and lend in one, for Sequential)."""
        busy = self._busy
        if dx is not None:
            base = dx.base
            for i, buf in busy.items():  # the usual case, a take: found by identity, one slot left busy
                if base is buf:
                    if len(busy) > 1:
                        self._busy = {i: buf}
                    self._lent = dx
                    return
        slot = None if dx is None else self._slot_of(dx)
        self._busy = {} if slot is None else {slot: busy[slot]}
        self._lent = None if slot is None else dx

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
        for a in live:
            slot = self._slot_of(a)
            if slot is not None:
                kept[slot] = self._slots[slot]
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


def gradient(layer, key, shape, dtype, over=None):
    """A buffer for a gradient the layer's backward writes: from its model's workspace (over `over`, the
    incoming gradient, when the model lent it), or the layer's own buffer `key` outside a model's pass."""
    ws = getattr(layer.model, "_workspace", None)
    if ws is None or not ws.serves():
        return reuse(layer._buffers, key, shape, dtype)
    return ws.take(shape, dtype) if over is None else ws.over(over, shape, dtype)


def scratch(layer, size, dtype):
    """A kernel's scratch for one call: the model's shared one, or the layer's own outside a model."""
    ws = getattr(layer.model, "_workspace", None)
    return reuse(layer._buffers, "scratch", (size,), dtype) if ws is None else ws.scratch(size, dtype)
