"""Threads and thread counts change nothing: two models trained at once in two Python threads end
bitwise equal to the same models trained one after the other, and a seeded run is bitwise the same
run to run and with 1 or 2 OpenMP threads (the kernels reduce in fixed chunks)."""
import threading

import numpy as np
import pytest

import cnn
from cnn.layers import Dense

needs_openmp = pytest.mark.skipif(not cnn._core.HAVE_OPENMP, reason="built without OpenMP: there is only one thread")

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


@needs_openmp
def test_one_or_two_openmp_threads_give_the_same_bits(restore_threads):
    cnn.set_num_threads(1)
    single = train(3)
    cnn.set_num_threads(2)
    assert cnn.get_num_threads() == 2
    assert_bitwise_equal(train(3), single)


def train_convnet(seed, variant):
    """LeNet-5 (im2col and dense conv paths, 2x2 average pooling, per-channel scale, scaled tanh, Adam), or a
    net of the other paths: 1x1 pointwise, 3x3 depthwise, max and general average pooling, an L2 penalty and
    SGD-Nesterov over more than CNN_PARALLEL_WORK parameters. Batches of 32 take every parallel branch."""
    rng = np.random.default_rng(seed)
    x, y = rng.random((96, 1, 32, 32), dtype=np.float32), rng.integers(0, 10, 96)
    if variant == "lenet":
        model = cnn.applications.lenet5(seed=seed)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    else:
        L = cnn.layers
        model = cnn.Sequential([L.Conv2D(6, 5, activation="relu", input_shape=(1, 32, 32)), L.MaxPooling2D(2),
                                L.Conv2D(12, 1), L.Conv2D(12, 3, padding="same", groups=12, activation="tanh"),
                                L.AveragePooling2D(3, strides=2, padding="same"), L.Flatten(),
                                L.Dense(64, activation="relu", kernel_regularizer=cnn.regularizers.L2(1e-3)),
                                L.Dense(10, activation="softmax")], seed=seed)
        model.compile(optimizer=cnn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                      loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return model.get_weights() + [np.array(history.history["loss"]), model.predict(x[:40])]


@needs_openmp
@pytest.mark.parametrize("variant", ["lenet", "other_paths"])
def test_convnets_give_the_same_bits_at_any_thread_count(restore_threads, variant):
    """Parallel loops hand out their pieces to whichever thread is free: the bits must not depend on it."""
    cnn.set_num_threads(1)
    single = train_convnet(4, variant)
    for threads in (2, 3, 16):
        cnn.set_num_threads(threads)
        assert cnn.get_num_threads() == threads
        assert_bitwise_equal(train_convnet(4, variant), single)


@needs_openmp
@pytest.mark.parametrize("loss", ["sparse_cross_entropy_loss", "cross_entropy_loss", "mse_loss"])
def test_losses_over_big_batches_give_the_same_bits_at_any_thread_count(restore_threads, loss):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4001, 10)).astype(np.float32)  # 40,010 values: the chunks run in parallel
    target = rng.integers(0, 10, 4001) if loss == "sparse_cross_entropy_loss" else \
        rng.dirichlet(np.ones(10), 4001).astype(np.float32)

    def run(threads):
        cnn.set_num_threads(threads)
        grad = np.empty_like(x)
        return getattr(cnn._core, loss)(grad, x, target), grad

    value, grad = run(1)
    for threads in (2, 3, 16):
        v, g = run(threads)
        assert v == value and g.tobytes() == grad.tobytes()
