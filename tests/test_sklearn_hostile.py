"""cnn.MLPClassifier / MLPRegressor off the happy path: partial_fit's classes, Ctrl-C at any line of a fit,
huge sizes, non-finite weights, several threads on one estimator, non-native byte order."""
import copy
import pickle
import signal
import sys
import threading
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

import cnn.sklearn
from cnn import _core
from cnn.sklearn import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def data3():
    return make_classification(90, 6, n_informative=4, n_classes=3, random_state=0)


def quietly(call, *args, **kwargs):
    """call(*args, **kwargs) with ConvergenceWarning and the interrupt warning recorded, not raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return call(*args, **kwargs), [str(w.message) for w in caught]


def raised(call, *args, **kwargs):
    """The exception call raises, ConvergenceWarning ignored."""
    with pytest.raises(BaseException) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        call(*args, **kwargs)
    return info.value


# ---- scikit-learn's own tests (sklearn/neural_network/tests/test_mlp.py, 1.9.1): only the import differs ----
def test_partial_fit_unseen_classes():
    # Non regression test for bug 6994
    # Tests for labeling errors in partial fit

    clf = MLPClassifier(random_state=0)
    clf.partial_fit([[1], [2], [3]], ["a", "b", "c"], classes=["a", "b", "c", "d"])
    clf.partial_fit([[4]], ["d"])
    assert clf.score([[1], [2], [3], [4]], ["a", "b", "c", "d"]) > 0


def test_partial_fit_errors():
    # Test partial_fit error handling.
    X = [[3, 2], [1, 6]]
    y = [1, 0]

    # no classes passed
    with pytest.raises(ValueError):
        MLPClassifier(solver="sgd").partial_fit(X, y, classes=[2])

    # lbfgs doesn't support partial_fit
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


# ---- partial_fit and classes=, side by side with scikit-learn -----------------------------------------------
def assert_same_state(ours, ref):
    """The same fitted estimator to rounding (float64 both sides)."""
    assert list(ours.classes_) == list(ref.classes_)
    for name in ("n_iter_", "t_", "n_outputs_", "out_activation_", "n_layers_"):
        assert getattr(ours, name) == getattr(ref, name), name
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-10)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def partial_fit_calls(case):
    """[(X, y, classes), ...]: the calls of one partial_fit scenario."""
    X, y = make_classification(60, 5, n_informative=3, n_classes=3, random_state=1)
    if case == "a class y never has":  # 4 outputs, the last never a target
        return [(X[:30], y[:30], [0, 1, 2, 3]), (X[30:], y[30:], None), (X, y, np.array([3, 2, 1, 0]))]
    if case == "binary, first batch one class":
        y = y % 2
        first = y == 0
        return [(X[first], y[first], [0, 1]), (X, y, None)]
    if case == "strings, a class only later":
        labels = np.array(["cat", "dog", "emu"])[y]
        late = labels != "emu"
        return [(X[late], labels[late], ["emu", "dog", "cat"]), (X, labels, None), (X[~late], labels[~late], None)]
    if case == "multilabel":  # sklearn binarizes y itself and keeps classes as classes_
        X, Y = make_multilabel_classification(40, 5, n_classes=3, random_state=2)
        return [(X, Y, [0, 1, 2]), (X, Y, None)]
    raise AssertionError(case)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("case", ["a class y never has", "binary, first batch one class",
                                  "strings, a class only later", "multilabel"])
def test_partial_fit_with_classes_matches_sklearn(case, solver):
    kw = dict(hidden_layer_sizes=(7,), solver=solver, random_state=3, learning_rate_init=0.05, batch_size=8)
    ours, ref = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    X_all = None
    for X, y, classes in partial_fit_calls(case):
        ours.partial_fit(X, y, classes=classes)
        ref.partial_fit(X, y, classes=classes)
        assert_same_state(ours, ref)
        X_all = X
    proba = ours.predict_proba(X_all)
    assert proba.shape == ref.predict_proba(X_all).shape == (len(X_all), len(ref.classes_) if case != "multilabel"
                                                            else 3)
    np.testing.assert_allclose(proba, ref.predict_proba(X_all), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X_all), ref.predict(X_all))


def test_partial_fit_class_errors_are_sklearns_and_change_nothing(data3):
    X, y = data3
    kw = dict(hidden_layer_sizes=(5,), random_state=0)
    # y's labels must be among classes; sklearn says so but keeps classes_ = [0, 1]: ours keeps nothing
    ours, ref = MLPClassifier(**kw), sk.MLPClassifier(**kw)
    error = raised(ours.partial_fit, X, y, classes=[0, 1])
    assert type(error) is ValueError and str(error) == str(raised(ref.partial_fit, X, y, classes=[0, 1]))
    assert str(error) == "`y` has classes not in `self.classes_`. `self.classes_` has [0 1]. 'y' has [0 1 2]."
    assert vars(ours) == MLPClassifier(**kw).__dict__
    # a later call with other classes
    ref = sk.MLPClassifier(**kw)
    ours.partial_fit(X, y, classes=[0, 1, 2])
    ref.partial_fit(X, y, classes=[0, 1, 2])
    fitted = pickle.dumps(ours)
    for classes in ([0, 1, 2, 3], np.array([0, 1, 3])):
        error = raised(ours.partial_fit, X, y, classes=classes)
        assert type(error) is ValueError and str(error) == str(raised(ref.partial_fit, X, y, classes=classes))
        assert str(error).endswith("is not the same as on last call to partial_fit, was: array([0, 1, 2])")
        assert pickle.dumps(ours) == fitted
    # the same classes in another order or container are the same classes
    ours.partial_fit(X, y, classes=(2, 1, 0))
    ref.partial_fit(X, y, classes=(2, 1, 0))
    assert_same_state(ours, ref)
    # classes on the first call only, and after fit none is needed
    assert str(raised(MLPClassifier().partial_fit, X, y)) == "classes must be passed on the first call to partial_fit."
    ours, ref = (quietly(cls(max_iter=3, **kw).fit, X, y)[0] for cls in (MLPClassifier, sk.MLPClassifier))
    ours.partial_fit(X[:10], y[:10])
    ref.partial_fit(X[:10], y[:10])
    assert_same_state(ours, ref)


# ---- Ctrl-C: as it was, or fully fitted ---------------------------------------------------------------------
def snapshot(est):
    """Every attribute of est by value (pickled), so that == compares arrays, lists and optimizer state."""
    return {k: pickle.dumps(v) for k, v in vars(est).items()}


def assert_fully_fitted(est, reference, X):
    """est has every attribute that an uninterrupted run of the same call gave reference, consistent and usable."""
    assert set(vars(est)) == set(vars(reference))
    assert all(a.base is est._params for a in est.coefs_ + est.intercepts_)
    assert np.isfinite(est._params).all()
    if hasattr(reference, "loss_curve_"):
        assert est.n_iter_ >= 1 and len(est.loss_curve_) >= est.n_iter_ and est.loss_ == est.loss_curve_[-1]
    assert set(est.predict(X)) <= set(est.classes_)


def scenario(name, X, y):
    """(a fresh estimator in the state before the call, the call)"""
    kw = dict(hidden_layer_sizes=(4,), batch_size=30, max_iter=3, tol=0.0, random_state=0)
    if name == "fit":
        return MLPClassifier(**kw), lambda est: est.fit(X, y)
    if name == "fit, early stopping":
        return MLPClassifier(early_stopping=True, **kw), lambda est: est.fit(X, y)
    if name == "fit, lbfgs":
        return MLPClassifier(solver="lbfgs", **kw), lambda est: est.fit(X, y)
    if name == "warm_start fit":
        return quietly(MLPClassifier(warm_start=True, **kw).fit, X, y)[0], lambda est: est.fit(X, y)
    if name == "first partial_fit":
        return MLPClassifier(**kw), lambda est: est.partial_fit(X, y, classes=[0, 1, 2])
    if name == "later partial_fit":
        return MLPClassifier(**kw).partial_fit(X, y, classes=[0, 1, 2]), lambda est: est.partial_fit(X, y)
    raise AssertionError(name)


SCENARIOS = ["fit", "fit, early stopping", "fit, lbfgs", "warm_start fit", "first partial_fit", "later partial_fit"]


class SigintAt:
    """A profiler that sends this process SIGINT at the k-th point where CPython runs signal handlers in the
    code of cnn/sklearn.py (the entry of a function of it or of one it calls, the return of a C function it
    called) and, with mash, at every later one (Ctrl-C pressed again and again). The handler runs there as
    it would for a real Ctrl-C. It also counts the checkpoints that training passed before the first signal
    (the last one before the first C training call ends the setup)."""

    def __init__(self, k, mash):
        self.k, self.mash, self.points, self.checkpoints, self.checkpoints_at_signal = k, mash, 0, 0, None

    def __call__(self, frame, event, arg):
        ours = cnn.sklearn.__file__
        if event == "call":
            here = frame.f_code.co_filename == ours or (frame.f_back and frame.f_back.f_code.co_filename == ours)
        else:
            here = event == "c_return" and frame.f_code.co_filename == ours
        if here:
            self.points += 1
            if self.points == self.k or (self.mash and self.points > self.k):
                if self.checkpoints_at_signal is None:
                    self.checkpoints_at_signal = self.checkpoints
                signal.raise_signal(signal.SIGINT)
        if event == "call" and frame.f_code is cnn.sklearn._BaseMLP._checkpoint.__code__:
            self.checkpoints += 1

    def run(self, call, est):
        """call(est) under the profiler: whether it raised KeyboardInterrupt"""
        sys.setprofile(self)
        try:
            quietly(call, est)
            return False
        except KeyboardInterrupt:
            return True
        finally:
            sys.setprofile(None)


@pytest.mark.parametrize("mash", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["once", "mashed"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_ctrl_c_anywhere_leaves_the_estimator_as_it_was_or_fully_fitted(data3, name, mash):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    X, y = data3
    reference, call = scenario(name, X, y)
    profiler = SigintAt(0, False)
    assert not profiler.run(call, reference)
    n_points = profiler.points
    outcomes = set()
    for k in range(1, n_points + 1):
        est, call = scenario(name, X, y)
        before = snapshot(est)
        profiler = SigintAt(k, mash)
        interrupted = profiler.run(call, est)
        assert profiler.checkpoints_at_signal is not None
        if snapshot(est) == before:
            assert interrupted
            outcomes.add("as it was")
        else:  # the fit ran to its end, or stopped with sklearn's warning after an epoch
            assert profiler.checkpoints_at_signal > 0, f"Ctrl-C in setup (point {k}) changed the estimator"
            assert_fully_fitted(est, reference, X)
            outcomes.add("fitted")
    assert outcomes == {"as it was", "fitted"} and n_points > 50
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


SETUP_STEPS = [(cnn.sklearn, "validate_data"), (cnn.sklearn, "LabelBinarizer"), (cnn.sklearn, "check_random_state"),
               (cnn.sklearn, "_pack"), (cnn.sklearn._Optimizer, "__init__"), (_core, "mlp_workspace_size"),
               (_core, "mlp_epoch")]


@pytest.mark.parametrize("name", ["fit", "warm_start fit", "first partial_fit", "later partial_fit"])
@pytest.mark.parametrize("module, step", SETUP_STEPS, ids=[s.strip("_") for _, s in SETUP_STEPS])
def test_ctrl_c_in_setup_or_the_first_batch_changes_nothing(monkeypatch, data3, module, step, name):
    X, y = data3
    est, call = scenario(name, X, y)
    before = snapshot(est)
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(step)
        raise KeyboardInterrupt
    monkeypatch.setattr(module, step, interrupt)
    if (step in ("LabelBinarizer", "_pack") and name in ("warm_start fit", "later partial_fit")
            or step == "__init__" and name == "later partial_fit"):
        return  # a fit that goes on from the last needs no new labels, weights or (partial_fit) optimizer
    with pytest.raises(KeyboardInterrupt):
        quietly(call, est)
    assert calls == [step] and snapshot(est) == before
    if name == "fit":
        assert not hasattr(est, "classes_")  # the case: classes_ set, no coefs_


# ---- errors that name the user's argument -------------------------------------------------------------------
def test_sizes_at_the_int32_and_int64_boundaries_work_or_name_the_argument(data3):
    X, y = data3
    beyond = {(2,) * 256: r"hidden_layer_sizes must hold at most 255 layers \(the C engine's limit\), got 256",
              (2**31,): r"hidden_layer_sizes must be <= 2147483647, got 2147483648",
              (5, 2**63): r"hidden_layer_sizes must be <= 2147483647, got 9223372036854775808",
              (2**31 - 1,) * 3: r"hidden_layer_sizes=\(2147483647, 2147483647, 2147483647\) with 6 features and 3 "
                                r"outputs makes 9223372054034644985 parameters .* at most 9223372036854775807"}
    for sizes, words in beyond.items():
        est = MLPClassifier(hidden_layer_sizes=sizes)
        with pytest.raises(ValueError, match=words):
            est.fit(X, y)
        assert not hasattr(est, "classes_")
    kw = dict(hidden_layer_sizes=(2,) * 255, max_iter=2, random_state=0)  # the most hidden layers there can be
    assert quietly(MLPClassifier(**kw).fit, X, y)[0].n_layers_ == 257
    # counts beyond int32 and int64 work as the useful values they amount to
    kw = dict(hidden_layer_sizes=(5,), random_state=0, tol=0.0)
    for huge in (2**31, 2**63):
        pairs = [(dict(batch_size=huge, max_iter=3), dict(batch_size=len(X), max_iter=3)),
                 (dict(max_iter=huge, n_iter_no_change=2, tol=1e9), dict(max_iter=4, n_iter_no_change=2, tol=1e9)),
                 (dict(n_iter_no_change=huge, max_iter=3), dict(max_iter=3)),
                 (dict(solver="lbfgs", max_iter=huge, max_fun=40), dict(solver="lbfgs", max_iter=10**6, max_fun=40)),
                 (dict(solver="lbfgs", max_iter=40, max_fun=huge), dict(solver="lbfgs", max_iter=40, max_fun=10**6))]
        for big, small in pairs:
            got, said = quietly(MLPClassifier(**{**kw, **big}).fit, X, y)
            want = quietly(MLPClassifier(**{**kw, **small}).fit, X, y)[0]
            assert got.n_iter_ == want.n_iter_ and got.loss_ == want.loss_, big
            np.testing.assert_array_equal(got.coefs_[0], want.coefs_[0])
            assert ("clipped" in " ".join(said)) == ("batch_size" in big)


# ---- non-finite weights -------------------------------------------------------------------------------------
SKLEARN_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and "
                      "need to be preprocessed.")


def test_non_finite_weights_stop_at_once_and_the_message_says_what_is_left(capsys):
    # sklearn's test_nonfinite_params: sklearn trains all max_iter epochs of NaN, then raises
    Xbig = np.finfo(np.float64).max * np.random.RandomState(0).uniform(size=(10, 2))
    ybig = np.random.RandomState(0).standard_normal(10)
    for cls in (sk.MLPRegressor, MLPRegressor):
        est = cls(max_iter=20, verbose=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            error = raised(est.fit, Xbig, ybig)
        assert type(error) is ValueError and str(error).startswith(SKLEARN_NON_FINITE)
    ref, ours = capsys.readouterr().out.split("Iteration 1,")[1:]
    assert ref.count("Iteration") == 19 and "Iteration" not in ours  # ours stopped after the first epoch
    assert str(error) == SKLEARN_NON_FINITE + " The estimator is left unfitted."
    assert vars(est) == MLPRegressor(max_iter=20, verbose=True, random_state=0).__dict__
    # a warm start and a partial_fit that blow up keep the weights of the fit before, finite
    for call in ("warm_start", "partial_fit"):
        est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, warm_start=call == "warm_start", random_state=0)
        quietly(est.fit, Xbig / np.finfo(np.float64).max, ybig)
        before = snapshot(est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            error = raised(est.fit if call == "warm_start" else est.partial_fit, Xbig, ybig)
        assert str(error) == SKLEARN_NON_FINITE + " The estimator keeps the weights it had before this call."
        assert snapshot(est) == before and np.isfinite(est._params).all()


def test_non_finite_weights_the_loss_does_not_show_are_caught(data3, monkeypatch):
    # A NaN in the weights of a hidden unit whose activation is never used (its outgoing weights are 0 and relu
    # may turn NaN into 0) leaves the loss finite; the fit still stops after that epoch and names the weights.
    X, y = data3
    est = quietly(MLPClassifier((3,), solver="sgd", max_iter=2, warm_start=True, random_state=0).fit, X, y)[0]
    real, epochs = _core.mlp_epoch, []

    def poison(params, *args):
        result = real(params, *args)
        epochs.append(result[0])
        params[0] = np.nan  # coefs_[0][0, 0]: input 0 into hidden unit 0
        return result
    monkeypatch.setattr(_core, "mlp_epoch", poison)
    error = raised(est.set_params(max_iter=50).fit, X, y)
    assert str(error) == SKLEARN_NON_FINITE + " The estimator keeps the weights it had before this call."
    assert len(epochs) == 1 and np.isfinite(epochs[0]) and np.isfinite(est._params).all()


# ---- several threads on one estimator -----------------------------------------------------------------------
# (warnings.catch_warnings is not thread-safe: these tests set their filter once, for every thread)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_and_pickle_while_another_thread_fits_see_before_or_after():
    X, y = make_classification(300, 20, n_informative=6, n_classes=3, random_state=0)
    est = MLPClassifier((32,), batch_size=1, max_iter=2, tol=0.0, warm_start=True, random_state=0).fit(X, y)
    before = est.predict_proba(X)
    est.set_params(max_iter=40)
    fitting = threading.Thread(target=est.fit, args=(X, y))
    seen = []
    fitting.start()
    while fitting.is_alive() or not seen:
        seen.append(est.predict_proba(X))
        seen.append(pickle.loads(pickle.dumps(est)).predict_proba(X))
    fitting.join()
    after = est.predict_proba(X)
    assert est.n_iter_ == 40 and not np.array_equal(before, after)
    assert "_lock" not in vars(est) and np.array_equal(copy.deepcopy(est).predict_proba(X), after)  # lock not copied
    for proba in seen:
        assert np.array_equal(proba, before) or np.array_equal(proba, after)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_two_threads_fitting_one_estimator_get_what_one_fit_gets():
    X, y = make_classification(300, 20, n_informative=6, n_classes=3, random_state=0)
    kw = dict(hidden_layer_sizes=(32,), batch_size=1, max_iter=20, tol=0.0, random_state=0)
    est, errors = MLPClassifier(**kw), []

    def fit():
        try:
            est.fit(X, y)
        except Exception as e:  # reported below: an exception in a thread would otherwise vanish
            errors.append(e)
    threads = [threading.Thread(target=fit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    want = MLPClassifier(**kw).fit(X, y)
    assert est.n_iter_ == want.n_iter_ == 20
    for a, b in zip(est.coefs_ + est.intercepts_, want.coefs_ + want.intercepts_):
        np.testing.assert_array_equal(a, b)


# ---- byte order ---------------------------------------------------------------------------------------------
def test_non_native_byte_order_trains_and_predicts_as_native(data3):
    X, y = data3
    kw = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0)
    swap = lambda a: a.astype(a.dtype.newbyteorder("S"))  # noqa: E731
    for dtype in (np.float32, np.float64):
        Xn, yn = X.astype(dtype), y.astype(np.int64)
        native = quietly(MLPClassifier(**kw).fit, Xn, yn)[0]
        swapped = quietly(MLPClassifier(**kw).fit, swap(Xn), swap(yn))[0]
        assert not swap(Xn).dtype.isnative and swapped.coefs_[0].dtype == dtype  # sklearn: float64 for '>f4'
        for a, b in zip(native.coefs_ + native.intercepts_, swapped.coefs_ + swapped.intercepts_):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(swapped.predict_proba(swap(Xn)), native.predict_proba(Xn))
        np.testing.assert_array_equal(swapped.predict(swap(Xn)), native.predict(Xn))
        native.partial_fit(Xn, yn)
        swapped.partial_fit(swap(Xn), swap(yn))
        np.testing.assert_array_equal(native.coefs_[0], swapped.coefs_[0])
    Xr, yr = make_regression(40, 4, random_state=0)
    native = quietly(MLPRegressor(**kw).fit, Xr.astype(np.float32), yr)[0]
    swapped = quietly(MLPRegressor(**kw).fit, swap(Xr.astype(np.float32)), swap(yr))[0]
    np.testing.assert_array_equal(native.predict(Xr.astype(np.float32)), swapped.predict(swap(Xr.astype(np.float32))))
    assert swapped.coefs_[0].dtype == np.float32
