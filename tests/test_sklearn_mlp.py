"""cnn.MLPClassifier / MLPRegressor against scikit-learn: check_estimator, the same training run, the ecosystem."""
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from cnn.sklearn import MLPClassifier, MLPRegressor

SANITIZED = os.environ.get("CNN_SANITIZE") == "1"  # tests/sanitize.sh
RTOL = 1e-6  # float64 runs agree with scikit-learn to rounding (~1e-15); this leaves room for BLAS differences


@pytest.fixture(scope="module")
def data3():
    X, y = make_classification(120, 7, n_informative=4, n_classes=3, random_state=0)
    return X, y


def fit_both(cls, X, y, **kw):
    """Fit cnn's and sklearn's estimator with the same arguments, ConvergenceWarning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = getattr(__import__("cnn.sklearn", fromlist=[cls]), cls)(**kw).fit(X, y)
        ref = getattr(sk, cls)(**kw).fit(X, y)
    return ours, ref


def assert_same_run(ours, ref, rtol=RTOL, atol=1e-9):
    if hasattr(ref, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=rtol)
        assert ours.t_ == ref.t_
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.loss_, ref.loss_, rtol=rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(ours, name) == getattr(ref, name), name
    for name in ("best_loss_", "best_validation_score_", "validation_scores_"):
        a, b = getattr(ours, name, None), getattr(ref, name, None)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=rtol, err_msg=name)


# ---- check_estimator ----------------------------------------------------------------------------------
# No check is expected to fail. Skips come only from the environment (pandas absent, SCIPY_ARRAY_API unset)
# or from checks that do not apply (no decision_function).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_check_estimator(estimator, check):
    check(estimator)


# ---- the same run as scikit-learn -----------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_classifier_matches_sklearn_over_50_epochs(data3, solver, shuffle):
    X, y = data3
    ours, ref = fit_both("MLPClassifier", X, y, hidden_layer_sizes=(13, 9), activation="tanh", solver=solver,
                         max_iter=50, shuffle=shuffle, random_state=3, batch_size=32, tol=0.0)
    assert len(ours.loss_curve_) == 50
    assert_same_run(ours, ref)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-9)


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("activation", ["identity", "logistic", "relu"])
def test_sgd_schedules_match_sklearn(data3, schedule, activation):
    X, y = data3
    ours, ref = fit_both("MLPClassifier", X, y, hidden_layer_sizes=(8,), activation=activation, solver="sgd",
                         learning_rate=schedule, learning_rate_init=0.05, max_iter=60, n_iter_no_change=2,
                         random_state=0, nesterovs_momentum=activation != "relu", batch_size=50)
    assert_same_run(ours, ref)


def test_adaptive_schedule_divides_the_learning_rate(data3):
    X, y = data3
    ours, ref = fit_both("MLPClassifier", X, y, hidden_layer_sizes=(5,), solver="sgd", learning_rate="adaptive",
                         learning_rate_init=0.5, tol=1.0, n_iter_no_change=1, max_iter=40, random_state=0)
    assert ours._optimizer.learning_rate == ref._optimizer.learning_rate < 0.5
    assert_same_run(ours, ref)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_early_stopping_matches_sklearn(data3, solver):
    X, y = data3
    ours, ref = fit_both("MLPClassifier", X, y, hidden_layer_sizes=(10,), solver=solver, early_stopping=True,
                         validation_fraction=0.2, max_iter=200, random_state=5, learning_rate_init=0.01)
    assert ours.best_loss_ is None and len(ours.validation_scores_) == ours.n_iter_ < 200
    assert_same_run(ours, ref)  # includes the restored best weights


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressor_matches_sklearn(loss, n_targets):
    X, y = make_regression(90, 5, n_targets=n_targets, noise=0.1, random_state=2)
    y = np.abs(y) / 100 if loss == "poisson" else y / 100
    ours, ref = fit_both("MLPRegressor", X, y, loss=loss, hidden_layer_sizes=(11, 6), solver="adam",
                         learning_rate_init=0.01, max_iter=50, random_state=4, batch_size=16)
    assert_same_run(ours, ref)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-9)


def test_multilabel_and_string_labels_match_sklearn():
    X, Y = make_multilabel_classification(80, 6, n_classes=4, random_state=1)
    ours, ref = fit_both("MLPClassifier", X, Y, hidden_layer_sizes=(7,), max_iter=40, random_state=1)
    assert ours.out_activation_ == "logistic" and ours.predict(X).shape == Y.shape
    assert_same_run(ours, ref)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))

    X, y = make_classification(60, 4, random_state=3)
    labels = np.array(["no", "yes"])[y]
    ours, ref = fit_both("MLPClassifier", X, labels, hidden_layer_sizes=(6,), solver="sgd", max_iter=30,
                         random_state=2)
    assert_same_run(ours, ref)
    assert list(ours.classes_) == ["no", "yes"] and ours.predict_proba(X).shape == (60, 2)


def test_lbfgs_matches_sklearn(data3):
    X, y = data3
    ours, ref = fit_both("MLPClassifier", X, y, hidden_layer_sizes=(6,), solver="lbfgs", max_iter=30,
                         random_state=0)
    assert ours.n_iter_ == ref.n_iter_ == 30 and not hasattr(ours, "loss_curve_") and ours.t_ == 0
    assert_same_run(ours, ref, rtol=1e-5, atol=1e-7)


def test_xor_with_lbfgs_scores_one():
    X, y = [[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0]
    clf = MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", solver="lbfgs", random_state=1).fit(X, y)
    assert clf.score(X, y) == 1.0


def test_partial_fit_and_warm_start_match_sklearn(data3):
    X, y = data3
    kw = dict(hidden_layer_sizes=(9,), solver="sgd", random_state=0, learning_rate_init=0.05)
    ours, ref = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    for _ in range(3):
        ours.partial_fit(X, y, classes=np.unique(y))
        ref.partial_fit(X, y, classes=np.unique(y))
    assert_same_run(ours, ref)
    ours, ref = fit_both("MLPClassifier", X, y, max_iter=5, warm_start=True, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        ref.fit(X, y)
    assert_same_run(ours, ref)


def test_float32_stays_float32_and_tracks_sklearn(data3):
    X, y = data3
    ours, ref = fit_both("MLPClassifier", X.astype(np.float32), y, hidden_layer_sizes=(10,), max_iter=20,
                         random_state=0)
    assert all(c.dtype == np.float32 for c in ours.coefs_ + ours.intercepts_)
    assert ours.predict_proba(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-4)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verbose_output_and_warnings_are_sklearns(data3, capsys):
    X, y = data3
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", max_iter=6, verbose=True, random_state=0,
              early_stopping=True, n_iter_no_change=2, tol=0.5)
    for cls in (MLPClassifier, sk.MLPClassifier):
        cls(**kw).fit(X, y)
    ours, ref = capsys.readouterr().out.split("Iteration 1,")[1:]
    assert "Validation score" in ours and "Stopping." in ours and ours == ref
    with pytest.warns(ConvergenceWarning, match=r"Stochastic Optimizer: Maximum iterations \(3\) reached"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3).fit(X, y)
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, batch_size=1000, tol=1e9).fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_errors_are_sklearns(data3):
    X, y = data3
    with pytest.raises(AttributeError, match="partial_fit") as info:
        MLPClassifier(solver="lbfgs").partial_fit(X, y)
    assert "lbfgs is not stochastic" in str(info.value.__cause__)
    with pytest.raises(ValueError, match="does not support early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPClassifier(activation="softplus").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    with pytest.raises(ValueError, match="momentum"):
        MLPClassifier(momentum=1.5).fit(X, y)
    with pytest.raises(ValueError, match="loss must be one of"):
        MLPRegressor(loss="huber").fit(X, y)
    with pytest.raises(ValueError, match="same classes"):
        MLPClassifier(warm_start=True, max_iter=1, tol=1e9).fit(X, y).fit(X, y % 2)


# ---- the scikit-learn ecosystem -------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_clone_pipeline_and_pickle(data3, tmp_path):
    X, y = data3
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0)
    assert clone(clf).get_params() == clf.get_params()
    pipe = make_pipeline(StandardScaler(), clf.set_params(max_iter=300, learning_rate_init=0.01)).fit(X, y)
    ref = make_pipeline(StandardScaler(), sk.MLPClassifier(**clf.get_params())).fit(X, y)
    assert pipe.score(X, y) == ref.score(X, y) > 0.8
    model = pipe[-1]
    restored = pickle.loads(pickle.dumps(model))
    assert all(c.base is restored._params for c in restored.coefs_ + restored.intercepts_)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    # a restored model keeps training where it stopped, as the original does
    for m in (model, restored):
        m.set_params(warm_start=True, max_iter=3).fit(X, y)
    np.testing.assert_array_equal(restored.coefs_[0], model.coefs_[0])


@pytest.mark.skipif(SANITIZED, reason="loky's worker processes inherit the ASan preload and abort in C++ code")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_in_two_processes(data3):
    X, y = data3
    grid = GridSearchCV(MLPClassifier(max_iter=50, learning_rate_init=0.05, random_state=0),
                        {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1e-1]}, cv=2, n_jobs=2).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4 and grid.best_score_ > 0.5
    assert isinstance(grid.best_estimator_, MLPClassifier)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.skipif(SANITIZED, reason="matplotlib's C++ extensions throw, which the ASan runtime cannot intercept")
def test_decision_boundary_display(data3):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from sklearn.inspection import DecisionBoundaryDisplay
    X, y = make_classification(60, 2, n_redundant=0, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=300, random_state=0).fit(X, y)
    disp = DecisionBoundaryDisplay.from_estimator(clf, X, response_method="predict_proba", grid_resolution=30)
    assert disp.response.shape == (30, 30) and 0 <= disp.response.min() <= disp.response.max() <= 1
    ref = clf.predict_proba(np.c_[disp.xx0.ravel(), disp.xx1.ravel()])[:, 1].reshape(30, 30)
    np.testing.assert_array_equal(disp.response, ref)
    matplotlib.pyplot.close("all")


def sigint_when(condition):
    """A thread that sends SIGINT to this process once condition() holds (polled every millisecond)."""
    def watch():
        while not condition():
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_after_an_epoch_stops_between_batches_and_keeps_the_model():
    X, y = make_classification(2000, 50, n_classes=3, n_informative=10, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(256, 256), batch_size=20, max_iter=10000, tol=0.0,
                        n_iter_no_change=10**6, random_state=0)  # cannot finish before the signal
    watcher = sigint_when(lambda: len(getattr(clf, "loss_curve_", ())) >= 1)  # mid-epoch 2, or a little later
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        clf.fit(X, y)
    watcher.join()
    assert 1 <= clf.n_iter_ == len(clf.loss_curve_) < 10000 and np.isfinite(clf._params).all()
    assert clf._optimizer.t >= clf.n_iter_ * 100  # 100 batches an epoch: the weights are past the last epoch
    assert clf.predict(X).shape == (2000,)


def test_import_cnn_does_not_import_sklearn():
    code = "import sys, cnn; assert 'sklearn' not in sys.modules; cnn.MLPClassifier; assert 'sklearn' in sys.modules"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
