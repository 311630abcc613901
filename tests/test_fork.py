"""A process forked after cnn ran its OpenMP kernels trains normally (multiprocessing's 'fork', Linux's
default start method): libgomp's worker pool does not survive fork, and without cnn's fork handler the
child waited forever at its first parallel region. The child keeps the parent's thread count, can set
its own, and gets the parent's results bitwise (they do not depend on the thread count)."""
import multiprocessing
import sys
import warnings

import numpy as np
import pytest

import cnn
from cnn.layers import Dense

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows"),
              pytest.mark.skipif(not cnn._core.HAVE_OPENMP, reason="built without OpenMP: no thread pool to lose")]

# big enough that the dense, activation, optimizer and MLP kernels open parallel regions
N, IN, HIDDEN, OUT = 512, 64, 300, 10
CHILD_TIMEOUT_S = 120  # the child trains in well under a second; a hang fails the test instead of the suite


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, IN)).astype(np.float32), rng.integers(0, OUT, N)


def train_all():
    """A Sequential and an MLPClassifier trained from fixed seeds: their weights and predictions."""
    x, y = data()
    model = cnn.Sequential([Dense(HIDDEN, activation="relu", input_dim=IN), Dense(OUT, activation="softmax")],
                           seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=256, epochs=2, verbose=0)
    mlp = cnn.MLPClassifier(hidden_layer_sizes=(HIDDEN,), max_iter=3, batch_size=256, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three iterations do not converge
        mlp.fit(x, y)
    return model.get_weights() + [model.predict(x[:50], verbose=0)] + mlp.coefs_ + [mlp.predict_proba(x[:50])]


def child(conn, threads):
    """Report the thread count inherited, then train at `threads` threads."""
    inherited = cnn.get_num_threads()
    cnn.set_num_threads(threads)
    conn.send((inherited, cnn.get_num_threads(), train_all()))
    conn.close()


def run_forked(threads):
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child, args=(send, threads))
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads (libgomp's pool) may deadlock the child:
        # the deadlock it means is the one this file tests is gone
        warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
        process.start()
    send.close()
    try:
        if not receive.poll(CHILD_TIMEOUT_S):
            pytest.fail(f"the forked child did not finish training in {CHILD_TIMEOUT_S} s (hung at a parallel region?)")
        return receive.recv()
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()


@pytest.fixture
def two_threads():
    saved = cnn.get_num_threads()
    cnn.set_num_threads(2)
    yield
    cnn.set_num_threads(saved)


@pytest.mark.parametrize("threads", [2, 3])
def test_child_forked_after_training_trains_like_the_parent(two_threads, threads):
    ours = train_all()  # the parent's pool exists now: the case that used to hang
    inherited, used, theirs = run_forked(threads)
    assert (inherited, used) == (2, threads)
    assert len(theirs) == len(ours)
    for got, want in zip(theirs, ours):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    # and the parent's own pool still works after the fork
    for got, want in zip(train_all(), ours):
        assert got.tobytes() == want.tobytes()
