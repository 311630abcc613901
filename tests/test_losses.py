"""Loss kernels against torch.nn.functional: mean value and gradient w.r.t. the input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn import _core
from conftest import DTYPES, assert_close

SHAPES = [(1, 1), (1, 2), (1, 10), (7, 3), (33, 10), (100, 257)]


def check(dtype, kernel, args, torch_loss, x):
    xt = torch.tensor(x, requires_grad=True)
    ref = torch_loss(xt)
    ref.backward()
    dx = np.empty_like(x)
    value = kernel(dx, x, *args)
    assert isinstance(value, float)
    assert_close(value, ref.item(), dtype)
    assert_close(dx, xt.grad.numpy(), dtype)
    assert kernel(None, x, *args) == value  # the gradient is optional and changes nothing


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", SHAPES)
def test_sparse_cross_entropy(rng, dtype, n, k):
    x = (rng.standard_normal((n, k)) * 3).astype(dtype)
    y = rng.integers(0, k, n)
    check(dtype, _core.sparse_cross_entropy_loss, (y,), lambda t: F.cross_entropy(t, torch.tensor(y)), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("kind", ["onehot", "probs"])
def test_cross_entropy_targets(rng, dtype, n, k, kind):
    x = (rng.standard_normal((n, k)) * 3).astype(dtype)
    if kind == "onehot":
        t = np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
    else:
        t = rng.random((n, k)).astype(dtype)
        t /= t.sum(axis=1, keepdims=True)
    check(dtype, _core.cross_entropy_loss, (t,), lambda z: F.cross_entropy(z, torch.tensor(t)), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", SHAPES)
def test_binary_cross_entropy(rng, dtype, n, k):
    x = (rng.standard_normal((n, k)) * 3).astype(dtype)
    t = rng.random((n, k)).astype(dtype)
    check(dtype, _core.binary_cross_entropy_loss, (t,),
          lambda z: F.binary_cross_entropy_with_logits(z, torch.tensor(t)), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", SHAPES)
def test_mse(rng, dtype, n, k):
    x = rng.standard_normal((n, k)).astype(dtype)
    t = rng.standard_normal((n, k)).astype(dtype)
    check(dtype, _core.mse_loss, (t,), lambda z: F.mse_loss(z, torch.tensor(t)), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_multiclass_hinge_is_multi_margin_times_classes(rng, dtype, n, k, margin):
    x = rng.standard_normal((n, k)).astype(dtype)
    y = rng.integers(0, k, n)
    check(dtype, _core.multiclass_hinge_loss, (y, margin),
          lambda z: k * F.multi_margin_loss(z, torch.tensor(y), margin=margin), x)


def test_hinge_worked_example():
    # ROB 102: scores [3.2, 5.1, -1.7] for true class 0: max(0, 5.1-3.2+1) + max(0, -1.7-3.2+1) = 2.9
    s = np.array([[3.2, 5.1, -1.7]])
    dx = np.empty_like(s)
    assert _core.multiclass_hinge_loss(dx, s, np.array([0])) == pytest.approx(2.9)
    np.testing.assert_array_equal(dx, [[-1, 1, 0]])


def test_cross_entropy_worked_example():
    # logits [0, ln 3], label 1 → softmax [1/4, 3/4], loss -ln(3/4), gradient [1/4, -1/4]
    x = np.array([[0.0, np.log(3.0)]])
    dx = np.empty_like(x)
    assert _core.sparse_cross_entropy_loss(dx, x, np.array([1])) == pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(dx, [[0.25, -0.25]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_finite_at_huge_logits(dtype):
    x = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 1e4]], dtype)
    y = np.array([1, 0])
    t = np.eye(3, dtype=dtype)[y]
    for kernel, target in ((_core.sparse_cross_entropy_loss, y), (_core.cross_entropy_loss, t),
                           (_core.binary_cross_entropy_loss, t), (_core.multiclass_hinge_loss, y)):
        dx = np.empty_like(x)
        value = kernel(dx, x, target)
        assert np.isfinite(value) and np.all(np.isfinite(dx)), kernel.__name__
    ref = F.cross_entropy(torch.tensor(x, dtype=torch.float64), torch.tensor(y)).item()
    assert _core.sparse_cross_entropy_loss(None, x, y) == pytest.approx(ref, rel=1e-6)


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        _core.sparse_cross_entropy_loss(None, np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        _core.multiclass_hinge_loss(None, np.zeros((2, 3)), np.array([-1, 0]))
