"""Activation kernels against torch, forward and backward, including ±1e4 logits."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnn
from cnn import _core
from conftest import DTYPES, assert_close

A = 1.7159
aten = torch.ops.aten
# name: (code, alpha, beta, torch forward, torch backward(dy, x, y)). The references run in float64 on
# the very inputs the kernel gets: float32 results are then held to the exact answer, not to another
# float32 implementation whose tanh differs by an ulp (which 1 - y² at saturation would magnify).
CASES = {
    "identity": (_core.ACT_IDENTITY, 0.0, 1.0, lambda t: t * 1, lambda dy, x, y, r: dy),
    "sigmoid": (_core.ACT_SIGMOID, 0.0, 1.0, torch.sigmoid, lambda dy, x, y, r: aten.sigmoid_backward(dy, y)),
    "tanh": (_core.ACT_TANH, 0.0, 1.0, torch.tanh, lambda dy, x, y, r: aten.tanh_backward(dy, y)),
    # the float32 kernel holds a and s in float32: r(v) rounds a constant as the kernel does
    "scaled_tanh": (_core.ACT_SCALED_TANH, A, 1.0, lambda t: A * torch.tanh(t),
                    lambda dy, x, y, r: aten.tanh_backward(dy * r(A), y / r(A))),
    "scaled_tanh_s": (_core.ACT_SCALED_TANH, -0.5, 2 / 3, lambda t: -0.5 * torch.tanh(2 / 3 * t),
                      lambda dy, x, y, r: aten.tanh_backward(dy * -0.5 * r(2 / 3), y / -0.5)),
    "relu": (_core.ACT_RELU, 0.0, 1.0, torch.relu, lambda dy, x, y, r: aten.threshold_backward(dy, y, 0)),
    "leaky_relu": (_core.ACT_LEAKY_RELU, 0.01, 1.0, lambda t: F.leaky_relu(t, 0.01),
                   lambda dy, x, y, r: aten.leaky_relu_backward(dy, x, 0.01, False)),
    "leaky_relu_neg": (_core.ACT_LEAKY_RELU, -0.3, 1.0, lambda t: F.leaky_relu(t, -0.3),
                       lambda dy, x, y, r: aten.leaky_relu_backward(dy, x, -0.3, False)),
}
SHAPES = [(1,), (1, 1), (7,), (3, 5), (2, 3, 4, 5), (129, 257)]


def f64(a):
    return torch.tensor(np.asarray(a, np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_matches_torch(rng, dtype, shape, name):
    code, alpha, beta, forward, backward = CASES[name]
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y = np.empty_like(x)
    _core.activation_forward(y, x, code, alpha, beta)
    assert_close(y, forward(f64(x)).numpy(), dtype)
    dx = np.empty_like(x)
    _core.activation_backward(dx, dy, x, y, code, alpha, beta)
    assert_close(dx, backward(f64(dy), f64(x), f64(y), lambda v: float(dtype(v))).numpy(), dtype)


def test_activation_backward_is_autograd(rng):
    # the backward formulas above are torch's autograd: checked once end to end in float64
    for code, alpha, beta, forward, _ in CASES.values():
        x, dy = rng.standard_normal((5, 4)) * 3, rng.standard_normal((5, 4))
        xt = torch.tensor(x, requires_grad=True)
        forward(xt).backward(torch.tensor(dy))
        y, dx = np.empty_like(x), np.empty_like(x)
        _core.activation_forward(y, x, code, alpha, beta)
        _core.activation_backward(dx, dy, x, y, code, alpha, beta)
        assert_close(dx, xt.grad.numpy(), np.float64)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "scaled_tanh"])
def test_activation_in_place(rng, name):
    code, alpha, beta, fn, _ = CASES[name]
    x = rng.standard_normal((4, 6))
    ref = fn(torch.tensor(x)).numpy()
    _core.activation_forward(x, x, code, alpha, beta)
    assert_close(x, ref, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 1), (1, 10), (7, 3), (33, 257)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_matches_torch(rng, dtype, n, k, log):
    x = (rng.standard_normal((n, k)) * 5).astype(dtype)
    x[0, 0] = 1e4  # stable for huge logits
    if k > 1:
        x[-1, -1] = -1e4
    dy = rng.standard_normal((n, k)).astype(dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    (_core.log_softmax_forward if log else _core.softmax_forward)(y, x)
    assert np.all(np.isfinite(y))
    assert_close(y, (F.log_softmax if log else F.softmax)(f64(x), dim=1).numpy(), dtype)
    (_core.log_softmax_backward if log else _core.softmax_backward)(dx, dy, y)
    ref = (aten._log_softmax_backward_data if log else aten._softmax_backward_data)(
        f64(dy), f64(y), 1, torch.float64)
    assert_close(dx, ref.numpy(), dtype)
    if dtype == np.float64:  # and those backward ops are autograd's
        xt = torch.tensor(x, requires_grad=True)
        (F.log_softmax if log else F.softmax)(xt, dim=1).backward(torch.tensor(dy))
        assert_close(dx, xt.grad.numpy(), dtype)


def test_activation_rejects_bad_codes():
    x = np.ones(3)
    with pytest.raises(ValueError, match="activation code"):
        _core.activation_forward(np.empty(3), x, 99)
    # the scale a of a·tanh(s·x) is checked where the activation is made (the binding checks memory only)
    with pytest.raises(ValueError, match="non-zero"):
        cnn.activations.scaled_tanh(0.0)
    with pytest.raises(TypeError, match="finite"):
        cnn.activations.scaled_tanh(float("inf"))


def test_float32_tanh_accuracy_and_special_values():
    """The float kernel's own tanh (Cephes' tanhf): within 2e-7 relative of the exact value on a fine grid
    across both branches (|x| < 0.625 and the exp form) and on tiny inputs; -0, ±inf and NaN as libm."""
    grid = np.concatenate([np.linspace(-12, 12, 400001), np.geomspace(1e-30, 1, 1001)]).astype(np.float32)
    y = np.empty_like(grid)
    _core.activation_forward(y, grid, _core.ACT_TANH, 0.0, 1.0)
    exact = np.tanh(grid.astype(np.float64))
    nonzero = exact != 0
    assert np.max(np.abs(y[nonzero] - exact[nonzero]) / np.abs(exact[nonzero])) < 2e-7
    special = np.array([-0.0, 0.0, np.inf, -np.inf, np.nan], np.float32)
    out = np.empty_like(special)
    _core.activation_forward(out, special, _core.ACT_TANH, 0.0, 1.0)
    np.testing.assert_array_equal(out, np.tanh(special))
    assert list(np.signbit(out[:2])) == [True, False]


SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0])


def with_specials(rng, shape, dtype, scale=3.0):
    """Random values with NaN, ±inf, -0 and +0 at a quarter of the places."""
    a = (rng.standard_normal(shape) * scale).astype(dtype)
    flat = a.reshape(-1)
    where = rng.random(flat.size) < 0.25
    flat[where] = rng.choice(SPECIAL, int(where.sum()))
    return a


def assert_same_specials(got, ref, dtype, zero_sign=True):
    """NaN exactly where the reference has NaN, the same infinities, the sign of every zero (when asked),
    and the finite values close."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    inf = np.isinf(ref)
    np.testing.assert_array_equal(np.isinf(got), inf)
    np.testing.assert_array_equal(got[inf], ref[inf])
    if zero_sign:
        zero = ref == 0
        np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(ref[zero]))
    finite = np.isfinite(ref)
    assert_close(got[finite], ref[finite], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_nan_inf_and_signed_zero_as_torch(rng, dtype, name):
    """NaN, ±inf and -0 go through forward and backward as through PyTorch's (relu(nan) is nan, and relu's
    backward passes dy at a NaN output, as threshold_backward does). 8192+ elements: several spans, so the
    vectorised loops and their tails both see them."""
    code, alpha, beta, forward, backward = CASES[name]
    shape = (67, 129)
    x, dy = with_specials(rng, shape, dtype), with_specials(rng, shape, dtype, 1.0)
    y = np.empty_like(x)
    _core.activation_forward(y, x, code, alpha, beta)
    assert_same_specials(y, forward(f64(x)).numpy(), dtype)
    dx = np.empty_like(x)
    _core.activation_backward(dx, dy, x, y, code, alpha, beta)
    ref = backward(f64(dy), f64(x), f64(y), lambda v: float(dtype(v))).numpy()
    # the sign of a zero gradient follows each formula's factor order (a·s·(1 - t²) against s·(a - y²/a))
    assert_same_specials(dx, ref, dtype, zero_sign=False)


def test_relu_of_nan_is_nan():
    x = np.array([np.nan, -1.0, 2.0, -np.inf, np.inf, -0.0])
    y, dx = np.empty_like(x), np.empty_like(x)
    _core.activation_forward(y, x, _core.ACT_RELU)
    np.testing.assert_array_equal(y, [np.nan, 0.0, 2.0, 0.0, np.inf, -0.0])
    assert np.signbit(y[-1])
    _core.activation_backward(dx, np.full_like(x, 3.0), x, y, _core.ACT_RELU)
    np.testing.assert_array_equal(dx, [3.0, 0.0, 3.0, 0.0, 3.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_nan_and_inf_as_torch(rng, dtype, log):
    x = with_specials(rng, (40, 7), dtype)
    x[0] = -np.inf  # a row of -inf only: NaN, as PyTorch
    x[1] = 1.0
    x[1, 3] = -np.inf  # one -inf among finite logits: probability 0 (log-softmax -inf)
    y, dx = np.empty_like(x), np.empty_like(x)
    (_core.log_softmax_forward if log else _core.softmax_forward)(y, x)
    assert_same_specials(y, (F.log_softmax if log else F.softmax)(f64(x), dim=1).numpy(), dtype)
    dy = with_specials(rng, x.shape, dtype, 1.0)
    (_core.log_softmax_backward if log else _core.softmax_backward)(dx, dy, y)
    ref = (aten._log_softmax_backward_data if log else aten._softmax_backward_data)(f64(dy), f64(y), 1, torch.float64)
    assert_same_specials(dx, ref.numpy(), dtype, zero_sign=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", ["ACT_IDENTITY", "ACT_SIGMOID", "ACT_TANH", "ACT_RELU"])
def test_mlp_carries_a_nan_weight_to_its_output_and_gradient(dtype, hidden):
    """The MLP's own layer loop (mlp.c) runs the same activations: one NaN weight makes the outputs of its
    unit's rows NaN, for relu too (which used to turn it into 0), and the gradient says so."""
    units = np.array([3, 4, 2])
    count = 4 * 4 + 5 * 2
    params = np.linspace(-1, 1, count).astype(dtype)
    params[1] = np.nan  # coefs_[0][0, 1]: hidden unit 1 is NaN for every row
    x = np.ones((5, 3), dtype)
    code = getattr(_core, hidden)
    out = np.empty((5, 2), dtype)
    work = np.empty(_core.mlp_workspace_size(units, 5, True), dtype)
    _core.mlp_forward(out, work, params, x, units, code, _core.MLP_OUT_IDENTITY)
    assert np.isnan(out).all()
    grad = np.empty(count, dtype)
    loss = _core.mlp_loss_grad(grad, work, params, x, np.zeros((5, 2), dtype), units, code,
                               _core.MLP_OUT_IDENTITY, 0.0)
    assert np.isnan(loss)
    assert np.isnan(grad[16:20]).any()  # the hidden biases' gradient
