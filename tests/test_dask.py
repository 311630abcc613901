"""cnn on a Dask cluster through joblib: a GridSearchCV of cnn.MLPClassifier with n_jobs=-1 under
joblib.parallel_backend('dask') on a LocalCluster of 2 worker processes finds what the serial search finds,
estimators and models travel to the workers by pickle, and each worker runs cnn on one thread per task.
Needs dask.distributed (`pip install "cnn[dask]"`); skips without it, unless CNN_REQUIRE_CLUSTER=1 (.ci/run)."""
import os
import warnings

import numpy as np
import pytest

import cnn
from user_env import child_env, require_dask

pytest.importorskip("sklearn")
import joblib  # noqa: E402  (scikit-learn's own dependency)
from sklearn.model_selection import GridSearchCV  # noqa: E402


@pytest.fixture(scope="module")
def distributed():
    return require_dask()


@pytest.fixture(scope="module")
def client(distributed):
    # workers are fresh processes: they find cnn where this process does; no dashboard (its port may be taken)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"PYTHONPATH": child_env()["PYTHONPATH"]}) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4))
    return x, (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(int)


def _search(n_jobs):
    grid = {"hidden_layer_sizes": [(4,), (9,)], "alpha": [1e-4, 1e-1], "solver": ["sgd", "adam"]}
    search = GridSearchCV(cnn.MLPClassifier(max_iter=40, learning_rate_init=0.02, random_state=0), grid, cv=3,
                          n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 40 epochs on purpose
        return search.fit(*_data())


def test_grid_search_on_dask_equals_serial(client, distributed):
    serial = _search(n_jobs=None)
    with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as tasks:
        spread = _search(n_jobs=-1)
    assert len({t["worker"] for t in tasks.data}) == 2  # the fits ran on both workers
    assert spread.cv_results_["params"] == serial.cv_results_["params"]
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_array_equal(spread.cv_results_[key], serial.cv_results_[key])
    assert spread.best_params_ == serial.best_params_
    for a, b in zip(spread.best_estimator_.coefs_, serial.best_estimator_.coefs_):
        np.testing.assert_array_equal(a, b)  # one thread either way: bitwise


def _fit_remote(model, x, y):
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model, os.getpid()


def test_model_pickles_to_a_worker_and_back(client):
    x, y = _data()
    model = cnn.Sequential([cnn.layers.Dense(5, activation="tanh", input_dim=4),
                            cnn.layers.Dense(2, activation="softmax")], seed=3, dtype="float64")
    model.compile(optimizer=cnn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.build()
    remote, pid = client.submit(_fit_remote, model, x, y, pure=False).result()
    local, here = _fit_remote(model, x, y)
    assert pid != here
    np.testing.assert_array_equal(remote._params, local._params)
    assert remote.optimizer.iterations == local.optimizer.iterations == 2 * 6


def test_each_worker_runs_cnn_on_its_thread_budget(client):
    """dask's nanny starts a worker with OMP_NUM_THREADS=1 (distributed.nanny.pre-spawn-environ), and cnn's kernels
    take their count from it: a worker running threads_per_worker tasks at once uses as many cores, not
    threads_per_worker times the machine's."""
    counts = client.run(lambda: cnn.get_num_threads())
    assert len(counts) == 2 and set(counts.values()) == {1}
