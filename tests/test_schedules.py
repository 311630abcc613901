"""PiecewiseConstantDecay as Keras defines it, and the lecture's learning-rate schedule through
LearningRateScheduler in one line."""
import numpy as np
import pytest

import cnn
from cnn.callbacks import LearningRateScheduler
PiecewiseConstantDecay = cnn.optimizers.schedules.PiecewiseConstantDecay  # the Keras spelling

LECTURE = [5e-4] * 2 + [2e-4] * 2 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 2  # 13 epochs of LeCun et al.'s rates


def test_keras_boundaries_are_inclusive_on_the_left_piece():
    """Keras's docstring example: 1.0 for the first 100001 steps, 0.5 for the next 10000, then 0.1."""
    schedule = PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1])
    assert [schedule(s) for s in (0, 100000, 100001, 110000, 110001, 10**9)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


def test_the_lecture_schedule_in_one_line():
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3)).astype(np.float32), rng.integers(0, 2, 16)
    model = cnn.Sequential([cnn.layers.Dense(2, activation="softmax", input_shape=(3,))], seed=0)
    model.compile(cnn.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=len(LECTURE), verbose=0, callbacks=[
        LearningRateScheduler(PiecewiseConstantDecay([1, 3, 6, 10], [5e-4, 2e-4, 1e-4, 5e-5, 1e-5]))])
    assert history.history["learning_rate"] == LECTURE


@pytest.mark.parametrize("boundaries, values, error, words", [
    ([1, 2], [1.0, 2.0], ValueError, "one more entry"),
    ([2, 1], [1.0, 2.0, 3.0], ValueError, "boundaries must increase"),
    ([1], [1.0, -2.0], ValueError, r"values\[1\] must be >= 0"),
    ((1,), "ab", TypeError, "must be lists"),
])
def test_bad_arguments_are_named(boundaries, values, error, words):
    with pytest.raises(error, match=words):
        PiecewiseConstantDecay(boundaries, values)
