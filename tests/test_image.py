"""cnn.image.affine_transform and its kernel against scipy.ndimage.affine_transform, plane by plane: order 0 and
1, every fill mode, random matrices (and ones that land exactly on the grid's edges), odd sizes, batch 1."""
import numpy as np
import pytest
from scipy import ndimage

import cnn
from cnn import _core

TOL = {np.float32: 1e-5, np.float64: 1e-12}
MODES = ["constant", "nearest", "reflect"]


def scipy_warp(x, matrices, order, mode, cval, output_shape):
    """scipy.ndimage.affine_transform on each plane; matrices (1 or N, 2, 3) as the kernel takes them."""
    out = np.empty(x.shape[:2] + output_shape, x.dtype)
    for n in range(x.shape[0]):
        m = matrices[n if len(matrices) > 1 else 0].astype(np.float64)
        for c in range(x.shape[1]):
            out[n, c] = ndimage.affine_transform(x[n, c], m, order=order, mode=mode, cval=cval,
                                                 output_shape=output_shape, output=x.dtype)
    return out


def random_case(rng, dtype, on_grid):
    n, c = int(rng.choice([1, 1, 2, 3])), int(rng.integers(1, 4))
    h, w, oh, ow = (int(v) for v in rng.choice([1, 2, 3, 5, 7, 11, 13], 4))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    m = rng.standard_normal((int(rng.choice([1, n])), 2, 3)) * [1, 1, 4]
    if on_grid:  # half-cell steps: coordinates fall on cells, on ties and on the edges 0 and H-1 exactly
        m = np.round(m * 2) / 2
    return x, m.astype(dtype), (oh, ow)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("on_grid", [False, True])
def test_matches_scipy(dtype, order, mode, on_grid):
    rng = np.random.default_rng([order, MODES.index(mode), on_grid, dtype == np.float32])
    for _ in range(40):
        x, m, shape = random_case(rng, dtype, on_grid)
        got = cnn.image.affine_transform(x, m, order=order, mode=mode, cval=-0.75, output_shape=shape)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, scipy_warp(x, m, order, mode, -0.75, shape), rtol=TOL[dtype],
                                   atol=TOL[dtype])


def test_worked_example():
    """[[1 2], [3 4]] at (0.5, 0.25): 0.5·(1·0.75 + 2·0.25) + 0.5·(3·0.75 + 4·0.25) = 2.25 (image.c)."""
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert cnn.image.affine_transform(x, np.zeros((2, 2)), offset=(0.5, 0.25), output_shape=(1, 1))[0, 0, 0, 0] == 2.25


def test_scipy_conventions_at_the_edges():
    """'constant' reads cval the moment a coordinate leaves [0, W-1], however little; order 0 rounds a tie up."""
    x = np.arange(1.0, 6.0)[None, None, None, :]
    shift = [[1.0, 0.0, 0.0], [0.0, 1.0, -1e-12]]
    assert cnn.image.affine_transform(x, shift, order=0, cval=-9.0)[0, 0, 0].tolist() == [-9, 2, 3, 4, 5]
    half = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]
    assert cnn.image.affine_transform(x, half, order=0, cval=-9.0)[0, 0, 0].tolist() == [2, 3, 4, 5, -9]


def test_offset_forms_agree():
    """A 2x3 matrix, a 2x2 matrix with an offset pair, and per-image offsets are the same warp."""
    rng = np.random.default_rng(3)
    x, a, b = rng.standard_normal((2, 1, 6, 5)), rng.standard_normal((2, 2)), np.array([0.3, -1.2])
    want = cnn.image.affine_transform(x, np.concatenate([a, b[:, None]], axis=1))
    np.testing.assert_array_equal(cnn.image.affine_transform(x, a, offset=b), want)
    np.testing.assert_array_equal(cnn.image.affine_transform(x, [a, a], offset=[b, b]), want)
    np.testing.assert_array_equal(cnn.image.affine_transform(x, a, offset=1.5),
                                  cnn.image.affine_transform(x, a, offset=(1.5, 1.5)))


def test_one_matrix_per_image():
    rng = np.random.default_rng(4)
    x, m = rng.standard_normal((3, 2, 7, 9)), rng.standard_normal((3, 2, 3))
    got = cnn.image.affine_transform(x, m)
    for n in range(3):
        np.testing.assert_array_equal(got[n:n + 1], cnn.image.affine_transform(x[n:n + 1], m[n]))


def test_same_bits_at_any_thread_count():
    rng = np.random.default_rng(5)
    x, m = rng.standard_normal((64, 3, 29, 31)).astype(np.float32), rng.standard_normal((64, 2, 3))
    threads = cnn.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            cnn.set_num_threads(t)
            outs.append(cnn.image.affine_transform(x, m, mode="reflect"))
    finally:
        cnn.set_num_threads(threads)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_nonfinite_coordinates_read_cval():
    """A NaN or infinite coordinate samples no cell (the binding takes any matrix: nothing may index past the plane)."""
    x, y = np.ones((1, 1, 4, 4)), np.empty((1, 1, 3, 3))
    for bad in (np.nan, np.inf, 1e300):
        for fill in range(3):
            m = np.array([[[bad, 0.0, 0.0], [0.0, 1.0, 0.0]]])
            _core.affine_transform_forward(y, x, m, 1, fill, -2.0)
            assert np.isin(y[0, 0, 1:], [-2.0, 1.0]).all()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"order": 3}, ValueError, "order must be <= 1"),
    ({"mode": "wrap"}, ValueError, "mode must be one of"),
    ({"matrix": np.eye(3)}, ValueError, "matrix must have shape"),
    ({"matrix": np.ones((4, 2, 2))}, ValueError, "matrix must have shape"),
    ({"offset": [1.0, 2.0, 3.0]}, ValueError, "offset must be"),
    ({"x": np.ones((3, 3))}, ValueError, "x must have 4 dimensions"),
    ({"cval": float("nan")}, TypeError, "cval must be a finite number"),
    ({"output_shape": (0, 3)}, ValueError, r"output_shape\[0\] must be >= 1"),
])
def test_bad_arguments_are_named(kwargs, error, words):
    args = {"x": np.ones((2, 1, 4, 4)), "matrix": np.eye(2), **kwargs}
    with pytest.raises(error, match=words):
        cnn.image.affine_transform(**args)


def test_binding_checks_codes_and_matrix_count():
    x, y = np.ones((2, 1, 3, 3)), np.empty((2, 1, 3, 3))
    with pytest.raises(ValueError, match="'order' must be 0 or 1"):
        _core.affine_transform_forward(y, x, np.zeros((1, 2, 3)), 2, 0, 0.0)
    with pytest.raises(ValueError, match="'fill' must be an IMAGE_FILL_"):
        _core.affine_transform_forward(y, x, np.zeros((1, 2, 3)), 1, 3, 0.0)
    with pytest.raises(ValueError, match="'matrix' must hold 1 or N = 2 matrices, got 3"):
        _core.affine_transform_forward(y, x, np.zeros((3, 2, 3)), 1, 0, 0.0)


def test_vector_and_scalar_paths_give_the_same_bits():
    """With the column coefficients 0 every sample of an output row reads the same coordinate. Of 13 columns
    the first 8 go through the eight-lane (AVX-512) path where the CPU has it, the next 4 (the first 12
    without AVX-512) through the four-lane (AVX2) one, the last through the scalar one. The last column and row,
    where the second cell weighs 0 and the vector paths read their cells otherwise, are sampled too."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 13, 11)).astype(np.float32)
    m = np.zeros((3, 2, 3), np.float32)
    m[:, 0, 0], m[:, 1, 0] = rng.uniform(-1.5, 1.5, (2, 3))  # coordinates move down the rows only
    m[:, :, 2] = rng.uniform(-3, 14, (3, 2))  # some rows fall outside the plane
    m[0, 1], m[1, 0] = [0, 0, 10], [0, 0, 12]  # every sample on the last column, on the last row
    y = np.empty((3, 2, 17, 13), np.float32)
    _core.affine_transform_forward(y, x, m, 1, _core.IMAGE_FILL_CONSTANT, -0.5)
    assert (y == -0.5).any() and (y != -0.5).any()
    np.testing.assert_array_equal(y, np.repeat(y[..., 12:], 13, axis=-1))
