"""The data-parallel runs of tests/test_distributed.py, run by `mpiexec -n 2 python tests/mpi_scenarios.py OUT`.

Every rank trains on its shard and starts from its own seed; rank 0 writes every rank's results to OUT (an
.npz) for the test to compare with one process on the same global batches."""
import contextlib
import io
import os
import sys
import tempfile
import warnings

import numpy as np

import cnn
from cnn import distributed

N_ROWS, BATCH, EPOCHS = 41, 5, 3  # 41 rows: shards of 21 and 20, so rank 1 sits out the last step


def data(dtype, classes=3, features=4, n=N_ROWS, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(dtype), rng.integers(0, classes, n)


def sequential(dtype, optimizer, seed):
    model = cnn.Sequential([cnn.layers.Dense(7, activation="relu", input_dim=4),
                            cnn.layers.Dense(3, activation="softmax")], seed=seed, dtype=dtype)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


OPTIMIZERS = {"sgd": lambda: cnn.optimizers.SGD(0.1, momentum=0.9), "adam": lambda: cnn.optimizers.Adam(0.01)}


def run_sequential(dtype, opt, shuffle=False):
    x, y = data(dtype)
    xv, yv = data(dtype, n=13, seed=1)
    model = sequential(dtype, distributed.DistributedOptimizer(OPTIMIZERS[opt]()), seed=distributed.rank())
    history = model.fit(*distributed.shard(x, y), batch_size=BATCH, epochs=EPOCHS, shuffle=shuffle, verbose=0,
                        validation_data=distributed.shard(xv, yv))
    return {"params": model._params, "loss": np.array(history.history["loss"]),
            "val_loss": np.array(history.history["val_loss"]),
            "accuracy": np.array(history.history["accuracy"])}


def run_callbacks():
    """verbose=2, a ModelCheckpoint (each rank names its own file) and an EarlyStopping on the training loss
    that stops at once: every rank stops after the same epoch; only rank 0 printed and saved."""
    x, y = data(np.float64)
    model = sequential(np.float64, distributed.DistributedOptimizer(OPTIMIZERS["sgd"]()), seed=distributed.rank())
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(out):
        path = os.path.join(folder, f"rank{distributed.rank()}.npz")
        callbacks = [cnn.callbacks.ModelCheckpoint(path, monitor="loss"),
                     cnn.callbacks.EarlyStopping(monitor="loss", min_delta=10.0)]
        history = model.fit(*distributed.shard(x, y), batch_size=BATCH, epochs=5, verbose=2, callbacks=callbacks)
        saved = os.path.exists(path)
    return {"epochs": np.array(len(history.history["loss"])), "printed": np.array(len(out.getvalue())),
            "saved": np.array(saved)}


def keras3(dtype, optimizer, seed):
    """A model compiled with metric objects and weighted_metrics, and its fit's arguments past x and y: sample
    weights, validation (x, y, weights) on epochs 1 and 3, a steps_per_epoch stream of 3 batches per epoch."""
    model = cnn.Sequential([cnn.layers.Dense(7, activation="relu", input_dim=4),
                            cnn.layers.Dense(3, activation="softmax")], seed=seed, dtype=dtype)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", cnn.metrics.SparseTopKCategoricalAccuracy(k=2)], weighted_metrics=["accuracy"])
    weights = np.random.default_rng(2).uniform(0.5, 2.0, N_ROWS)
    xv, yv = data(dtype, n=13, seed=1)
    return model, weights, (xv, yv, np.random.default_rng(3).uniform(0.5, 2.0, 13))


KERAS3_FIT = {"epochs": EPOCHS, "shuffle": False, "verbose": 0, "steps_per_epoch": 3, "validation_freq": [1, 3]}


def run_keras3():
    x, y = data(np.float64)
    model, weights, val = keras3(np.float64, distributed.DistributedOptimizer(OPTIMIZERS["adam"]()),
                                 seed=distributed.rank())
    x, y, weights = distributed.shard(x, y, weights)
    history = model.fit(x, y, batch_size=BATCH, sample_weight=weights, validation_data=distributed.shard(*val),
                        **KERAS3_FIT)
    return {"params": model._params, **{k: np.array(v) for k, v in history.history.items()}}


def run_batchnorm():
    """BatchNormalization's moving statistics (past the trained weights) come from each rank's own rows and
    are averaged at every epoch's end, so the replicas stay equal."""
    x, y = data(np.float64)
    model = cnn.Sequential([cnn.layers.Dense(7, input_dim=4), cnn.layers.BatchNormalization(),
                            cnn.layers.Dense(3, activation="softmax")], seed=distributed.rank())
    model.compile(optimizer=distributed.DistributedOptimizer("adam"), loss="sparse_categorical_crossentropy")
    model.fit(*distributed.shard(x, y), batch_size=BATCH, epochs=2, verbose=0)
    return {"params": model._params, "trained": np.array(model._grads.size)}


def mlp(cls, dtype, solver, batch, shuffle, seed):
    """An MLPClassifier or MLPRegressor and its data (a regressor fits the classes as numbers)."""
    x, y = data(dtype)
    est = cls(hidden_layer_sizes=(6,), solver=solver, batch_size=batch, max_iter=EPOCHS, learning_rate_init=0.05,
              shuffle=shuffle, random_state=seed)
    return est, x, y.astype(dtype) if cls is cnn.MLPRegressor else y


def run_mlp(dtype, solver, shuffle=False, cls=cnn.MLPClassifier):
    clf, x, y = mlp(cls, dtype, solver, BATCH, shuffle, seed=distributed.rank())
    with warnings.catch_warnings(), distributed.data_parallel():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter epochs on purpose
        clf.fit(*distributed.shard(x, y))
    return {"params": clf._params, "loss": np.array(clf.loss_curve_), "t": np.array(clf.t_)}


SCENARIOS = {
    "sequential_sgd_float64": lambda: run_sequential(np.float64, "sgd"),
    "sequential_adam_float64": lambda: run_sequential(np.float64, "adam"),
    "sequential_sgd_float32": lambda: run_sequential(np.float32, "sgd"),
    "sequential_adam_float32": lambda: run_sequential(np.float32, "adam"),
    "sequential_shuffled": lambda: run_sequential(np.float64, "adam", shuffle=True),
    "mlp_adam_float64": lambda: run_mlp(np.float64, "adam"),
    "mlp_sgd_float64": lambda: run_mlp(np.float64, "sgd"),
    "mlp_adam_float32": lambda: run_mlp(np.float32, "adam"),
    "mlp_shuffled": lambda: run_mlp(np.float64, "adam", shuffle=True),
    "mlp_regressor_sgd_float64": lambda: run_mlp(np.float64, "sgd", cls=cnn.MLPRegressor),
    "callbacks": run_callbacks,
    "keras3": run_keras3,
    "batchnorm": run_batchnorm,
}


def main(out):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    cnn.set_num_threads(1)  # two ranks on a shared machine
    results = {}
    for name, scenario in SCENARIOS.items():
        for key, value in scenario().items():
            for r, v in enumerate(comm.gather(np.asarray(value), root=0) or []):
                results[f"{name}/{key}/{r}"] = v
    if comm.Get_rank() == 0:
        np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
