"""Threads and thread counts change nothing: two models trained at once in two Python threads end
bitwise equal to the same models trained one after the other, and a seeded run is bitwise the same
run to run and with 1 or 2 OpenMP threads (the kernels reduce in fixed chunks)."""
import threading

import numpy as np
import pytest

import cnn
from cnn.layers import Dense

# big enough that the dense, activation and optimizer kernels take their parallel branches
N, IN, HIDDEN, OUT, BATCH = 512, 64, 300, 10, 256


def data(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, IN)).astype(np.float32), rng.integers(0, OUT, N)


def train(seed, optimizer="adam"):
    model = cnn.Sequential([Dense(HIDDEN, activation="relu", input_dim=IN), Dense(OUT, activation="softmax")],
                           seed=seed)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    x, y = data(seed)
    history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    return model.get_weights() + [np.array(history.history["loss"]), model.predict(x[:50])]


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert u.tobytes() == v.tobytes()


@pytest.fixture
def restore_threads():
    threads = cnn.get_num_threads()
    yield
    cnn.set_num_threads(threads)


def test_two_threads_match_one_after_the_other():
    one_after_other = [train(1, "adam"), train(2, "sgd")]
    results = [None, None]

    def work(i, seed, optimizer):
        results[i] = train(seed, optimizer)

    threads = [threading.Thread(target=work, args=(0, 1, "adam")), threading.Thread(target=work, args=(1, 2, "sgd"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, one_after_other):
        assert_bitwise_equal(got, want)
    assert not np.array_equal(results[0][0], results[1][0])


def test_seeded_runs_repeat_bitwise():
    assert_bitwise_equal(train(5), train(5))


def test_one_or_two_openmp_threads_give_the_same_bits(restore_threads):
    if not cnn._core.HAVE_OPENMP:
        pytest.skip("built without OpenMP: there is only one thread")
    cnn.set_num_threads(1)
    single = train(3)
    cnn.set_num_threads(2)
    assert cnn.get_num_threads() == 2
    assert_bitwise_equal(train(3), single)
