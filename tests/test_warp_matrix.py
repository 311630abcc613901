"""warp_matrix_forward (csrc/warp_matrix.c) against Keras's own transforms: the 8-vectors keras.layers.
RandomRotation, RandomZoom and RandomTranslation build (in (x, y) order, keras/src/layers/preprocessing/image_
preprocessing), turned into cnn's (row, column) matrices and multiplied as 3x3 maps; odd sizes, batch 1, both
dtypes, and what the binding refuses."""
import re

import numpy as np
import pytest

from cnn import _core

TOL = {np.float32: 1e-6, np.float64: 1e-13}


def keras_transform(kind, f, h, w):
    """Keras's [a0, a1, a2, b0, b1, b2, c0, c1] per image: input (x, y) = (a0·x + a1·y + a2, b0·x + b1·y + b2)."""
    n = f.shape[1]
    zeros, ones = np.zeros(n), np.ones(n)
    if kind == _core.WARP_ROTATION:
        angle = f[0] * 2.0 * np.pi
        cos, sin = np.cos(angle), np.sin(angle)
        x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
        y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
        rows = [cos, -sin, x_offset, sin, cos, y_offset]
    elif kind == _core.WARP_ZOOM:
        zoom_y, zoom_x = 1.0 + f[0], 1.0 + f[-1]  # one row: the same zoom both ways
        rows = [zoom_x, zeros, (w - 1) / 2.0 * (1.0 - zoom_x), zeros, zoom_y, (h - 1) / 2.0 * (1.0 - zoom_y)]
    else:
        rows = [ones, zeros, -f[1] * w, zeros, ones, -f[0] * h]
    return np.stack(rows + [zeros, zeros], axis=1)


def keras_as_matrix(t):
    """(n, 3, 3) maps of (row, column, 1): row' = b1·row + b0·column + b2, column' = a1·row + a0·column + a2."""
    m = np.zeros((len(t), 3, 3))
    m[:, 0] = t[:, [4, 3, 5]]
    m[:, 1] = t[:, [1, 0, 2]]
    m[:, 2, 2] = 1.0
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,rows", [(_core.WARP_ROTATION, 1), (_core.WARP_ZOOM, 1), (_core.WARP_ZOOM, 2),
                                       (_core.WARP_TRANSLATION, 2)])
def test_matches_keras_transforms_composed(dtype, kind, rows):
    rng = np.random.default_rng([kind, rows, dtype == np.float32])
    for n, h, w in [(1, 1, 1), (1, 7, 5), (3, 32, 32), (13, 11, 2)]:
        matrix = rng.uniform(-2, 2, (n, 2, 3)).astype(dtype)
        draws = rng.uniform(-0.5, 0.5, (rows, n)).astype(dtype)
        before = np.concatenate([matrix.astype(np.float64), np.tile([[[0.0, 0.0, 1.0]]], (n, 1, 1))], axis=1)
        want = (before @ keras_as_matrix(keras_transform(kind, draws.astype(np.float64), h, w)))[:, :2]
        alone = np.empty_like(matrix)
        _core.warp_matrix_forward(alone, draws, kind, h, w, False)
        _core.warp_matrix_forward(matrix, draws, kind, h, w, True)
        np.testing.assert_allclose(matrix, want, rtol=TOL[dtype], atol=TOL[dtype] * 10)
        np.testing.assert_allclose(alone, keras_as_matrix(keras_transform(kind, draws.astype(np.float64), h, w))[:, :2],
                                   rtol=TOL[dtype], atol=TOL[dtype] * 10)


def test_worked_example():
    """warp_matrix.c: zoom (1, 1) of a 3x3 image keeps the centre (1, 1) and reads output (0, 0) at (-1, -1)."""
    m = np.empty((1, 2, 3))
    _core.warp_matrix_forward(m, np.ones((2, 1)), _core.WARP_ZOOM, 3, 3, False)
    assert m.tolist() == [[[2.0, 0.0, -1.0], [0.0, 2.0, -1.0]]]


def test_quarter_turn_reads_counter_clockwise():
    """A quarter turn (f = 1/4) of a 3x3 image: output (0, 0), the top left, reads input (0, 2), the top right."""
    m = np.empty((1, 2, 3))
    _core.warp_matrix_forward(m, np.full((1, 1), 0.25), _core.WARP_ROTATION, 3, 3, False)
    np.testing.assert_allclose(m[0] @ [0.0, 0.0, 1.0], [0.0, 2.0], atol=1e-15)


@pytest.mark.parametrize("args,error,words", [
    ((np.zeros((2, 2, 3)), np.zeros((1, 2)), 3, 4, 4), ValueError,
     "argument 'kind' must be a WARP_* code in [0, 3), got 3"),
    ((np.zeros((2, 2, 3)), np.zeros((2, 2)), _core.WARP_ROTATION, 4, 4), ValueError,
     "argument 'draws' must have 1 row (rotation) for warp kind 0, got 2"),
    ((np.zeros((2, 2, 3)), np.zeros((1, 2)), _core.WARP_TRANSLATION, 4, 4), ValueError,
     "argument 'draws' must have 2 rows (translation) for warp kind 2, got 1"),
    ((np.zeros((2, 2, 3)), np.zeros((1, 3)), _core.WARP_ZOOM, 4, 4), ValueError, "argument 'draws' must have shape"),
    ((np.zeros((2, 2, 3)), np.zeros((1, 2)), _core.WARP_ZOOM, 0, 4), ValueError,
     "arguments 'h' and 'w' must be >= 1, got 0 and 4"),
    ((np.zeros((2, 2, 3)), np.zeros((1, 2), np.float32), _core.WARP_ZOOM, 4, 4), TypeError,
     "argument 'draws' must have dtype float64"),
])
def test_bad_arguments_are_named(args, error, words):
    with pytest.raises(error, match=re.escape(f"warp_matrix_forward: {words}")):
        _core.warp_matrix_forward(*args, True)
