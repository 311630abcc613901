"""cnn.distributed: two MPI ranks on loopback train as one process does on the same global batches.

The 2-rank runs (tests/mpi_scenarios.py) start from different seeds on each rank, on 41 rows, so the shards
differ in size and rank 1 sits out the last step of every epoch; each is compared with one process at twice
the batch size: float64 within 1e-12, float32 within 1e-5 (relative). They need mpi4py and mpiexec
(`pip install "cnn[mpi]"`) and skip without them, unless CNN_REQUIRE_CLUSTER=1 (.ci/run) makes that a failure."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import cnn
from conftest import rel_err
from user_env import child_env, require_mpiexec

import mpi_scenarios as sc

HERE = os.path.dirname(os.path.abspath(__file__))

TOL = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Every scenario's results from a 2-rank run: {name: {key: [rank 0's, rank 1's]}}."""
    out = tmp_path_factory.mktemp("mpi") / "results.npz"
    env = child_env(OMP_NUM_THREADS="1", CNN_ADAPT_THREADS="0", OMPI_MCA_btl="self,tcp",
                    OMPI_MCA_btl_tcp_if_include="lo", PMIX_MCA_gds="hash")
    proc = subprocess.run(require_mpiexec() + [sys.executable, os.path.join(HERE, "mpi_scenarios.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = {}
    with np.load(out) as f:
        for key in f.files:
            name, field, r = key.split("/")
            found.setdefault(name, {}).setdefault(field, [None, None])[int(r)] = f[key]
    return found


def _equal_ranks(result):
    for field, (a, b) in result.items():
        np.testing.assert_array_equal(a, b, err_msg=f"{field} differs between the ranks")


def _one_process_sequential(dtype, opt):
    x, y = sc.data(dtype)
    model = sc.sequential(dtype, sc.OPTIMIZERS[opt](), seed=0)
    history = model.fit(x, y, batch_size=2 * sc.BATCH, epochs=sc.EPOCHS, shuffle=False, verbose=0,
                        validation_data=sc.data(dtype, n=13, seed=1))
    return {"params": model._params, **{k: np.array(v) for k, v in history.history.items()}}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_sequential_two_ranks_equal_one_process(ranks, dtype, opt):
    got = ranks[f"sequential_{opt}_{np.dtype(dtype).name}"]
    _equal_ranks(got)
    ref = _one_process_sequential(dtype, opt)
    for field in ("params", "loss", "val_loss", "accuracy"):  # logs and validation are the global ones
        assert rel_err(got[field][0], ref[field]) <= TOL[dtype], field


def test_sequential_shuffled_ranks_stay_equal(ranks):
    """Different seeds, shuffle=True: the broadcast weights and generator keep the replicas identical."""
    _equal_ranks(ranks["sequential_shuffled"])


def test_callbacks_stop_every_rank_and_only_rank_0_prints_and_saves(ranks):
    got = ranks["callbacks"]
    assert list(got["epochs"]) == [2, 2]  # EarlyStopping(patience=0) on the same reduced loss: epoch 2 on both
    assert got["printed"][0] > 0 and got["printed"][1] == 0
    assert list(got["saved"]) == [True, False]


def test_keras3_fit_two_ranks_equal_one_process(ranks):
    """Metric objects, weighted_metrics, sample_weight, weighted validation data, validation_freq and a
    steps_per_epoch stream: the logs are the global batches' as in one process."""
    got = ranks["keras3"]
    _equal_ranks(got)
    x, y = sc.data(np.float64)
    model, weights, val = sc.keras3(np.float64, sc.OPTIMIZERS["adam"](), seed=0)
    history = model.fit(x, y, batch_size=2 * sc.BATCH, sample_weight=weights, validation_data=val, **sc.KERAS3_FIT)
    ref = {"params": model._params, **history.history}
    assert sorted(got) == sorted(ref)
    assert len(ref["val_loss"]) == 2 and len(ref["loss"]) == sc.EPOCHS
    for field, value in ref.items():
        assert rel_err(got[field][0], np.array(value)) <= TOL[np.float64], field


def test_batchnorm_moving_statistics_averaged(ranks):
    got = ranks["batchnorm"]
    _equal_ranks(got)  # each rank's own rows would leave different moving statistics
    params, trained = got["params"][0], int(got["trained"][0])
    assert params.size > trained  # the moving statistics sit past the trained weights


def _one_process_mlp(dtype, solver, cls=cnn.MLPClassifier):
    clf, x, y = sc.mlp(cls, dtype, solver, 2 * sc.BATCH, shuffle=False, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter epochs on purpose
        clf.fit(x, y)
    return {"params": clf._params, "loss": np.array(clf.loss_curve_), "t": np.array(clf.t_)}


@pytest.mark.parametrize("dtype, solver", [(np.float64, "adam"), (np.float64, "sgd"), (np.float32, "adam")],
                         ids=["adam-float64", "sgd-float64", "adam-float32"])
def test_mlp_classifier_two_ranks_equal_one_process(ranks, dtype, solver):
    got = ranks[f"mlp_{solver}_{np.dtype(dtype).name}"]
    _equal_ranks(got)
    ref = _one_process_mlp(dtype, solver)
    assert got["params"][0].dtype == dtype
    for field in ("params", "loss"):
        assert rel_err(got[field][0], ref[field]) <= TOL[dtype], field
    assert got["t"][0] == ref["t"] == sc.EPOCHS * sc.N_ROWS  # t_ counts every rank's rows


def test_mlp_regressor_two_ranks_equal_one_process(ranks):
    got = ranks["mlp_regressor_sgd_float64"]
    _equal_ranks(got)
    ref = _one_process_mlp(np.float64, "sgd", cnn.MLPRegressor)
    for field in ("params", "loss"):
        assert rel_err(got[field][0], ref[field]) <= TOL[np.float64], field


def test_mlp_shuffled_ranks_stay_equal(ranks):
    _equal_ranks(ranks["mlp_shuffled"])


# ---- one process: the errors and the one-rank world ------------------------------------------------


def test_missing_mpi4py_names_the_install_command(monkeypatch):
    from cnn import distributed

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    for call in (distributed.rank, distributed.size, distributed.barrier, lambda: distributed.shard([1, 2]),
                 lambda: distributed.DistributedOptimizer("sgd"), lambda: distributed.data_parallel().__enter__()):
        with pytest.raises(ImportError, match=r'pip install "cnn\[mpi\]"'):
            call()


@pytest.fixture
def one_rank():
    require_mpiexec()
    from cnn import distributed

    assert distributed.size() == 1  # pytest was not started by mpiexec
    return distributed


def test_one_rank_world_is_a_no_op_with_a_warning(one_rank):
    x, y = sc.data(np.float64)
    assert one_rank.rank() == 0
    one_rank.barrier()
    xs, ys = one_rank.shard(x, y)
    np.testing.assert_array_equal(xs, x)
    with pytest.warns(UserWarning, match="one rank"):
        opt = one_rank.DistributedOptimizer(sc.OPTIMIZERS["adam"]())
    model, ref = sc.sequential(np.float64, opt, seed=0), sc.sequential(np.float64, sc.OPTIMIZERS["adam"](), seed=0)
    model.fit(x, y, batch_size=7, epochs=2, verbose=0)
    ref.fit(x, y, batch_size=7, epochs=2, verbose=0)
    np.testing.assert_array_equal(model._params, ref._params)
    with pytest.warns(UserWarning, match="one rank"), one_rank.data_parallel():
        pass


def test_shard_rejects_mismatched_rows(one_rank):
    with pytest.raises(ValueError, match=r"same number of rows, got \[3, 2\]"):
        one_rank.shard(np.zeros(3), np.zeros(2))
    with pytest.raises(TypeError, match="at least one array"):
        one_rank.shard()


def test_saved_model_keeps_the_wrapped_optimizer(one_rank, tmp_path):
    """A model trained with a DistributedOptimizer saves (and pickles) the optimizer it wraps."""
    import pickle

    with pytest.warns(UserWarning, match="one rank"):
        opt = one_rank.DistributedOptimizer(cnn.optimizers.SGD(0.05, momentum=0.5))
    model = sc.sequential(np.float64, opt, seed=0)
    model.fit(*sc.data(np.float64), batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    for loaded in (cnn.models.load_model(tmp_path / "m.npz"), pickle.loads(pickle.dumps(model))):
        assert type(loaded.optimizer) is cnn.optimizers.SGD and loaded.optimizer.momentum == 0.5
        np.testing.assert_array_equal(loaded.optimizer._buf, opt._buf)
        np.testing.assert_array_equal(loaded._params, model._params)


@pytest.mark.parametrize("params, fit, message", [
    ({"early_stopping": True}, "dense", "early_stopping=True is not supported"),
    ({"solver": "lbfgs"}, "dense", "solver='lbfgs' does not train data-parallel"),
    ({}, "weighted", "without sample_weight; got sample_weight"),
    ({}, "sparse", "without sample_weight; got a sparse X")])
def test_data_parallel_mlp_refuses_what_it_cannot_share(one_rank, monkeypatch, params, fit, message):
    """(A stand-in for a 2-rank group: the checks come before any collective call but the classes' allgather.)"""
    import scipy.sparse

    class Comm:
        def allgather(self, value):
            return [value]

    group = type("Group", (), {"comm": Comm()})()
    monkeypatch.setattr(one_rank, "_mlp_group", lambda: group)
    clf = cnn.MLPClassifier(max_iter=2, **params)
    x, y = sc.data(np.float64)
    with pytest.raises(ValueError, match=message):
        if fit == "weighted":
            clf.fit(x, y, sample_weight=np.ones(len(y)))
        else:
            clf.fit(scipy.sparse.csr_matrix(x) if fit == "sparse" else x, y)
    assert not hasattr(clf, "coefs_")
