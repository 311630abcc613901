"""Ctrl-C during Sequential.fit: control comes back at once, the model is left as after the last
completed batch (weights and optimizer step count agree), and it keeps working."""
import os
import sys
import signal
import threading
import time

import numpy as np
import pytest

import cnn
from cnn.callbacks import Callback
from cnn.layers import Dense


class Recorder(Callback):
    """The weights and optimizer step count at the end of every batch."""

    def __init__(self):
        super().__init__()
        self.batches, self.weights, self.iterations = 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        self.weights = self.model.get_weights()
        self.iterations = self.model.optimizer.iterations


def make_model(optimizer):
    model = cnn.Sequential([Dense(64, activation="relu", input_dim=32), Dense(10, activation="softmax")], seed=0)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=2048):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 32)).astype(np.float32), rng.integers(0, 10, n)


def interrupted_fit(model, delay):
    """fit for far too many epochs, stopped by SIGINT after `delay` s; returns (recorder, seconds to return)."""
    x, y = data()
    recorder = Recorder()
    sent = []
    timer = threading.Timer(delay, lambda: (sent.append(time.perf_counter()), os.kill(os.getpid(), signal.SIGINT)))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=16, epochs=10_000, verbose=0, callbacks=[recorder])
        returned = time.perf_counter()
    finally:
        timer.cancel()
    return recorder, returned - sent[0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", cnn.optimizers.SGD(0.01, momentum=0.9, variant="torch")])
@pytest.mark.parametrize("delay", [0.05, 0.13, 0.31])
def test_interrupt_leaves_the_last_completed_batch(optimizer, delay):
    model = make_model(optimizer)
    recorder, latency = interrupted_fit(model, delay)
    assert latency < 1.0
    assert recorder.batches > 0
    for got, want in zip(model.get_weights(), recorder.weights):
        np.testing.assert_array_equal(got, want)
    assert model.optimizer.iterations == recorder.iterations == recorder.batches


def test_model_works_after_an_interrupt():
    model = make_model("adam")
    recorder, _ = interrupted_fit(model, 0.1)
    x, y = data(256)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
    assert model.optimizer.iterations == recorder.batches + 2 * 8
    p = model.predict(x)
    assert p.shape == (256, 10) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


def test_interrupt_handler_is_restored():
    model = make_model("sgd")
    before = signal.getsignal(signal.SIGINT)
    interrupted_fit(model, 0.05)
    x, y = data(64)
    model.fit(x, y, epochs=1, verbose=0)
    assert signal.getsignal(signal.SIGINT) is before


# ---- an interrupt at any line of fit, its setup (build, checks, callbacks) included ----------------------------

CNN_DIR = os.path.dirname(cnn.__file__)


def run_interrupted_at(line, fn):
    """Call fn, handling a SIGINT at the `line`-th line that runs in cnn's own Python files (0: never), in
    that line's frame as Python would; returns (lines that ran, whether KeyboardInterrupt came out)."""
    count = [0]

    def tracer(frame, event, arg):
        if not frame.f_code.co_filename.startswith(CNN_DIR):
            return None
        if event == "line":
            count[0] += 1
            if count[0] == line:  # what the handler raises comes out at that line
                signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)
        return tracer
    sys.settrace(tracer)
    try:
        fn()
    except KeyboardInterrupt:
        return count[0], True
    finally:
        sys.settrace(None)
    return count[0], False


def fresh_model():
    model = cnn.Sequential([Dense(6, activation="relu"), Dense(3, activation="softmax")], seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("method", ["fit", "train_on_batch"])
def test_an_interrupt_at_any_line_leaves_the_model_as_it_was_or_after_a_whole_batch(method):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((20, 4)).astype(np.float32), rng.integers(0, 3, 20)
    if method == "fit":
        def call(model, callbacks=()):
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x[:4], y[:4]), callbacks=callbacks)
    else:
        def call(model, callbacks=()):
            model.train_on_batch(x[:8], y[:8])
    reference = fresh_model()
    reference.build((4,))
    trajectory = [reference.get_weights()]
    recorder = Recorder()
    recorder.on_train_batch_end = lambda batch, logs=None: trajectory.append(reference.get_weights())
    call(reference, [recorder])
    if method == "train_on_batch":
        trajectory.append(reference.get_weights())
    steps = len(trajectory) - 1
    lines, _ = run_interrupted_at(0, lambda: call(fresh_model()))
    assert steps == (3 if method == "fit" else 1) and lines > 100
    outcomes, handler = set(), signal.getsignal(signal.SIGINT)
    for line in range(1, lines + 1):
        model = fresh_model()
        run_interrupted_at(line, lambda model=model: call(model))
        assert signal.getsignal(signal.SIGINT) is handler  # restored, wherever the interrupt came
        if not model.built:  # as it was: no weights anywhere
            assert all(layer.weights == [] for layer in model.layers) and model.optimizer.iterations == 0
            outcomes.add("unbuilt")
        else:
            done = model.optimizer.iterations
            for got, want in zip(model.get_weights(), trajectory[done]):
                np.testing.assert_array_equal(got, want)
            assert all(np.shares_memory(w, model._params) for layer in model.layers for w in layer.weights)
            outcomes.add(done)
        call(model)  # and it trains on
        assert np.isfinite(model._params).all()
    assert outcomes == {"unbuilt"} | set(range(steps + 1))
