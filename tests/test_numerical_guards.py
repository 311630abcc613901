"""Numerical guards: logits of ±1e4 give finite losses and gradients (dense and conv nets, every
cross-entropy, the sklearn MLP), and a loss that turns non-finite stops training with a clear error or
through TerminateOnNaN, never leaving NaN weights behind. (Kernel-level ±1e4 checks against torch are in
test_activations.py and test_losses.py; TerminateOnNaN's batch accounting in test_callbacks.py.)"""
import warnings

import numpy as np
import pytest

import cnn
from cnn.callbacks import TerminateOnNaN
from cnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from cnn.sklearn import MLPClassifier, MLPRegressor

LOSSES = [("sparse_categorical_crossentropy", "softmax", 3), ("categorical_crossentropy", "softmax", 3),
          ("binary_crossentropy", "sigmoid", 1)]


def targets(loss, n, k, rng):
    labels = rng.integers(0, max(k, 2), n)
    if loss == "sparse_categorical_crossentropy":
        return labels
    return np.eye(k)[labels] if k > 1 else labels[:, None].astype(float)


def huge_logit_model(layers, last, dtype):
    """The model with its output bias at ±1e4 (alternating), so every logit is about ±1e4."""
    model = cnn.Sequential(layers, seed=0, dtype=dtype)
    model.build()
    bias = last.weights[1]
    bias[...] = 1e4 * (-1.0) ** np.arange(bias.size)
    return model


def assert_finite_step(model, loss, x, y):
    model.compile(optimizer="sgd", loss=loss)
    before = model.get_weights()
    value = model.train_on_batch(x, y)
    assert np.isfinite(value) and value > 1  # the wrong class sits 1e4 above: a large but finite loss
    assert np.isfinite(model._grads).all() and np.abs(model._grads).max() > 0
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss, act, k", LOSSES)
def test_dense_logits_of_1e4(loss, act, k, dtype):
    rng = np.random.default_rng(0)
    last = Dense(k, activation=act)
    model = huge_logit_model([Dense(5, activation="relu", input_dim=4), last], last, dtype)
    x = rng.standard_normal((7, 4))
    y = targets(loss, 7, k, rng)
    if loss != "sparse_categorical_crossentropy":  # put the mass on the class the bias pushes down
        y = 1.0 - y if k == 1 else np.roll(np.eye(k)[np.zeros(7, int)], 1, axis=1)
    assert_finite_step(model, loss, x, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_net_logits_of_1e4(dtype):
    rng = np.random.default_rng(1)
    last = Dense(3, activation="softmax")
    model = huge_logit_model([Conv2D(2, 3, activation="relu", input_shape=(1, 6, 6)), MaxPooling2D(2), Flatten(),
                              last], last, dtype)
    assert_finite_step(model, "sparse_categorical_crossentropy", rng.standard_normal((5, 1, 6, 6)),
                       np.ones(5, int))  # class 1: its bias is -1e4


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_mlp_classifier_with_logits_of_1e4(solver):
    """Inputs of 1e4 drive the output logits far past where exp overflows; the loss stays finite."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 3)) * 1e4
    y = rng.integers(0, 3, 30)
    est = MLPClassifier(hidden_layer_sizes=(4,), solver=solver, max_iter=3, random_state=0,
                        learning_rate_init=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after 3 iterations
        est.fit(X, y)
    assert np.isfinite(est.loss_)
    assert all(np.isfinite(a).all() for a in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict_proba(X)).all()


def diverging_model():
    model = cnn.Sequential([Dense(8, activation="relu", input_dim=4), Dense(1)], seed=0, dtype="float64")
    model.compile(optimizer=cnn.optimizers.SGD(learning_rate=1e12), loss="mse")
    rng = np.random.default_rng(3)
    return model, rng.standard_normal((64, 4)) * 100, rng.standard_normal((64, 1)) * 100


def test_nan_loss_stops_fit_with_a_clear_error_and_finite_weights():
    model, x, y = diverging_model()
    with pytest.raises(FloatingPointError, match="training loss became"):
        model.fit(x, y, batch_size=8, epochs=20, verbose=0, shuffle=False)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_terminate_on_nan_stops_without_nan_weights():
    model, x, y = diverging_model()
    history = model.fit(x, y, batch_size=8, epochs=20, verbose=0, shuffle=False, callbacks=[TerminateOnNaN()])
    assert model.stop_training and len(history.epoch) < 20
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_mlp_non_finite_weights_raise_sklearns_error_and_keep_the_fitted_model(cls):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((40, 3))
    y = rng.integers(0, 2, 40) if cls is MLPClassifier else rng.standard_normal(40)
    est = cls(hidden_layer_sizes=(5,), solver="sgd", max_iter=5, random_state=0, momentum=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    before = [a.copy() for a in est.coefs_ + est.intercepts_]
    predicted = est.predict(X)
    est.set_params(learning_rate_init=1e200)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"), \
            warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        est.fit(X * 1e100, y * 1e100 if cls is MLPRegressor else y)
    for a, b in zip(before, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(est.predict(X), predicted)
