"""to_categorical (Keras semantics) and set_random_seed (reproducible models without seed=)."""
import random

import numpy as np
import pytest

import cnn
from cnn.layers import Dense
from cnn.utils import set_random_seed, to_categorical


def test_to_categorical_worked_example():
    np.testing.assert_array_equal(to_categorical([0, 2, 1]), [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert to_categorical([0, 2, 1]).dtype == np.float32


def test_to_categorical_num_classes_and_dtype():
    got = to_categorical(np.array([1, 0]), num_classes=4, dtype="float64")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[0, 1, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize("shape,out", [((6,), (6, 3)), ((6, 1), (6, 3)), ((2, 3), (2, 3, 3)), ((2, 3, 1), (2, 3, 3)),
                                       ((1,), (1, 3)), ((), (3,))])
def test_to_categorical_shapes(shape, out):
    y = (np.arange(int(np.prod(shape))) % 3).reshape(shape)
    got = to_categorical(y, 3)
    assert got.shape == out
    np.testing.assert_array_equal(got.argmax(-1), y.reshape(out[:-1]))
    np.testing.assert_array_equal(got.sum(-1), 1)


def test_to_categorical_accepts_whole_floats():
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


@pytest.mark.parametrize("y,num_classes,words", [
    ([0, -1], None, ">= 0"),
    ([0, 3], 3, "out of range"),
    ([0.5], None, "whole-number"),
    ([np.nan], None, "whole-number"),
    ([], None, "empty"),
    ([0], 0, "num_classes"),
    ([0], 2.5, "num_classes"),
])
def test_to_categorical_rejects(y, num_classes, words):
    with pytest.raises(ValueError, match=words):
        to_categorical(y, num_classes)


def test_to_categorical_rejects_strings():
    with pytest.raises(TypeError, match="integer"):
        to_categorical(["a", "b"])


def test_to_categorical_empty_with_num_classes():
    assert to_categorical(np.zeros(0, int), 3).shape == (0, 3)


def new_model():
    return cnn.Sequential([Dense(4, activation="relu", input_dim=3), Dense(2)])


def test_set_random_seed_makes_unseeded_models_repeat():
    set_random_seed(7)
    a, r1 = new_model(), random.random()
    a.build()
    set_random_seed(7)
    b, r2 = new_model(), random.random()
    b.build()
    set_random_seed(8)
    c = new_model()
    c.build()
    assert r1 == r2
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "1", True])
def test_set_random_seed_rejects(seed):
    with pytest.raises(ValueError, match="seed"):
        set_random_seed(seed)
