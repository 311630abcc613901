"""dense_forward / dense_backward against torch.nn.functional.linear and autograd."""
import numpy as np
import pytest
import torch

from cnn import _core
from conftest import DTYPES, assert_close, central_differences

SHAPES = [(1, 1, 1), (1, 5, 3), (3, 1, 7), (7, 13, 5), (17, 31, 29), (50, 784, 10), (64, 100, 257)]


def torch_dense(x, w, b):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    y = torch.nn.functional.linear(xt, wt.T, bt)
    return xt, wt, bt, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,i,o", SHAPES)
def test_dense_matches_torch(rng, dtype, n, i, o):
    """Forward and every gradient; db is the unbound kernel bias_backward's sum, overwritten and accumulated."""
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, i), (i, o), (o,)))
    dy = rng.standard_normal((n, o)).astype(dtype)
    xt, wt, bt, yt = torch_dense(x, w, b)
    yt.backward(torch.tensor(dy))

    y = np.empty((n, o), dtype)
    _core.dense_forward(y, x, w, b)
    assert_close(y, yt.detach().numpy(), dtype)

    dx = np.empty_like(x)
    dw, db = np.zeros_like(w), np.zeros_like(b)
    _core.dense_backward(dx, dw, db, dy, x, w)
    assert_close(dx, xt.grad.numpy(), dtype)
    assert_close(dw, wt.grad.numpy(), dtype)
    assert_close(db, bt.grad.numpy(), dtype)

    # parameter gradients accumulate; the input gradient overwrites
    _core.dense_backward(dx, dw, db, dy, x, w)
    assert_close(dw, 2 * wt.grad.numpy(), dtype)
    assert_close(db, 2 * bt.grad.numpy(), dtype)
    assert_close(dx, xt.grad.numpy(), dtype)

    # accumulate=False overwrites them instead
    dw.fill(np.nan)
    db.fill(np.nan)
    _core.dense_backward(None, dw, db, dy, x, w, False)
    assert_close(dw, wt.grad.numpy(), dtype)
    assert_close(db, bt.grad.numpy(), dtype)


def test_dense_optional_bias_and_dx(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    y = np.empty((4, 2))
    _core.dense_forward(y, x, w, None)
    assert_close(y, x @ w, np.float64)
    dw = np.zeros_like(w)
    dy = rng.standard_normal((4, 2))
    _core.dense_backward(None, dw, None, dy, x, w)
    assert_close(dw, x.T @ dy, np.float64)


def test_dense_worked_example():
    # y = [1 2]·[[1 0 2], [0 1 3]] + [1 1 1] = [2 3 9]
    y = np.empty((1, 3))
    _core.dense_forward(y, np.array([[1.0, 2.0]]), np.array([[1.0, 0, 2], [0, 1, 3]]), np.ones(3))
    np.testing.assert_array_equal(y, [[2, 3, 9]])


def test_dense_finite_differences(rng):
    n, i, o = 3, 4, 5
    x, w, b = rng.standard_normal((n, i)), rng.standard_normal((i, o)), rng.standard_normal(o)
    dy = rng.standard_normal((n, o))

    def f(x, w, b):
        y = np.empty((n, o))
        _core.dense_forward(y, x, w, b)
        return float(np.sum(y * dy))

    dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros_like(b)
    _core.dense_backward(dx, dw, db, dy, x, w)
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        num = central_differences(lambda: f(x, w, b), arr)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)
