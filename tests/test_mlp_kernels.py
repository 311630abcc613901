"""mlp_forward / mlp_loss_grad / mlp_epoch (csrc/mlp.c) against PyTorch autograd and finite differences."""
import types

import numpy as np
import pytest
import torch

import cnn
from cnn import _core
from cnn.sklearn import MLPClassifier
from conftest import DTYPES, assert_close, central_differences

HIDDEN = {_core.ACT_IDENTITY: lambda z: z, _core.ACT_SIGMOID: torch.sigmoid, _core.ACT_TANH: torch.tanh,
          _core.ACT_RELU: torch.relu}
OUTPUTS = [_core.MLP_OUT_IDENTITY, _core.MLP_OUT_LOGISTIC, _core.MLP_OUT_SOFTMAX, _core.MLP_OUT_EXP]
NETS = [((5, 3), 1), ((5, 7, 3), 1), ((4, 6, 5, 2), 9), ((3, 1), 4), ((11, 13, 1), 17)]


def make(rng, units, n, output, dtype):
    """Random parameters (sklearn's flat order), inputs and targets fitting the output kind."""
    count = sum((a + 1) * b for a, b in zip(units, units[1:]))
    params = (0.5 * rng.standard_normal(count)).astype(dtype)
    x = rng.standard_normal((n, units[0])).astype(dtype)
    k = units[-1]
    if output == _core.MLP_OUT_SOFTMAX:
        y = np.eye(k)[rng.integers(0, k, n)]
    elif output == _core.MLP_OUT_LOGISTIC:
        y = rng.integers(0, 2, (n, k))
    else:
        y = rng.uniform(0, 2, (n, k))
    return params, x, y.astype(dtype)


def unpack(params, units):
    """coefs then intercepts, as views of params: the estimators' own unpacking (MLPClassifier._bind), here over a
    torch leaf, so the kernels are checked in the layout sklearn.py hands them."""
    views = types.SimpleNamespace()
    MLPClassifier._bind(views, params, units)
    return views.coefs_, views.intercepts_


def torch_loss(params, x, y, units, hidden, output, alpha):
    """sklearn's loss (reported) and the loss whose gradient sklearn uses, on torch leaves of params."""
    p = torch.tensor(params, requires_grad=True)
    coefs, intercepts = unpack(p, units)
    a = torch.tensor(x)
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        a = a @ w + b
        if i < len(coefs) - 1:
            a = HIDDEN[hidden](a)
    yt, n = torch.tensor(y), x.shape[0]
    if output == _core.MLP_OUT_IDENTITY:
        sq = ((yt - a) ** 2).sum()
        data, data_for_grad = sq / (2 * yt.numel()), sq / (2 * n)  # sklearn: gradient is k× the reported loss's
    elif output == _core.MLP_OUT_LOGISTIC:
        data = data_for_grad = torch.nn.functional.binary_cross_entropy_with_logits(a, yt, reduction="sum") / n
    elif output == _core.MLP_OUT_SOFTMAX:
        data = data_for_grad = -(yt * torch.log_softmax(a, 1)).sum() / n
    else:
        data = data_for_grad = (torch.special.xlogy(yt, yt) - yt * a - yt + torch.exp(a)).sum() / n
    l2 = 0.5 * alpha * sum((w ** 2).sum() for w in coefs) / n
    (data_for_grad + l2).backward()
    return float((data + l2).detach()), p.grad.numpy(), a.detach()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", sorted(HIDDEN))
@pytest.mark.parametrize("units,n,output", [(u, n, o) for u, n in NETS for o in OUTPUTS
                                            if o != _core.MLP_OUT_SOFTMAX or u[-1] > 1])
def test_loss_grad_and_forward_match_torch(rng, units, n, hidden, output, dtype):
    params, x, y = make(rng, units, n, output, dtype)
    alpha = 0.3
    ref_loss, ref_grad, z = torch_loss(params.astype(np.float64), x.astype(np.float64), y.astype(np.float64),
                                       units, hidden, output, alpha)
    u = np.array(units)
    grad = np.full_like(params, np.nan)  # overwritten, never accumulated
    work = np.empty(_core.mlp_workspace_size(u, n, True), dtype)
    loss = _core.mlp_loss_grad(grad, work, params, x, y, u, hidden, output, alpha)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)

    out = np.empty((n, units[-1]), dtype)
    _core.mlp_forward(out, np.empty(max(1, _core.mlp_workspace_size(u, n, False)), dtype), params, x, u, hidden,
                      output)
    link = {_core.MLP_OUT_IDENTITY: lambda t: t, _core.MLP_OUT_LOGISTIC: torch.sigmoid,
            _core.MLP_OUT_SOFTMAX: lambda t: torch.softmax(t, 1), _core.MLP_OUT_EXP: torch.exp}[output]
    assert_close(out, link(z).numpy(), dtype)


@pytest.mark.parametrize("output", OUTPUTS)
def test_gradient_matches_finite_differences(rng, output):
    units = (4, 5, 3, 1 if output == _core.MLP_OUT_IDENTITY else 3)  # one output: the gradient is the loss's
    params, x, y = make(rng, units, 6, output, np.float64)
    u = np.array(units)
    work, grad = np.empty(_core.mlp_workspace_size(u, 6, True)), np.empty_like(params)
    _core.mlp_loss_grad(grad, work, params, x, y, u, _core.ACT_TANH, output, 0.2)
    scratch = np.empty_like(params)
    numeric = central_differences(
        lambda: _core.mlp_loss_grad(scratch, work, params, x, y, u, _core.ACT_TANH, output, 0.2), params)
    assert np.linalg.norm(grad - numeric) / np.linalg.norm(numeric) < 1e-7


def test_saturated_log_loss_is_clipped_as_sklearn():
    # p = sigmoid(40) rounds to 1 in float64: sklearn clips it to 1 - eps, so the loss is -log(eps), not inf
    units = np.array([1, 1])
    params, x, y = np.array([40.0, 0.0]), np.ones((1, 1)), np.zeros((1, 1))
    grad, work = np.empty(2), np.empty(_core.mlp_workspace_size(units, 1, True))
    loss = _core.mlp_loss_grad(grad, work, params, x, y, units, _core.ACT_TANH, _core.MLP_OUT_LOGISTIC, 0.0)
    assert loss == pytest.approx(-np.log(np.finfo(np.float64).eps), rel=1e-12)
    np.testing.assert_allclose(grad, [1.0, 1.0])


def step_args(adam, t=0):
    return (adam, 0.05, 0.9, True, 0.9, 0.999, 1e-8, t)


@pytest.mark.parametrize("adam", [False, True])
def test_epoch_is_batches_of_loss_grad_and_optimizer_steps(rng, adam):
    units, n, batch = np.array([6, 8, 3]), 23, 5  # 5 batches, the last of 3 rows
    params, x, y = make(rng, tuple(units), n, _core.MLP_OUT_SOFTMAX, np.float64)
    count, order = params.size, rng.permutation(n)
    state = np.zeros(2 * count if adam else count)
    work, grad = np.empty(_core.mlp_workspace_size(units, batch, True)), np.empty(count)
    net = (units, _core.ACT_RELU, _core.MLP_OUT_SOFTMAX, 1e-3)

    ref_p, ref_state, total = params.copy(), state.copy(), 0.0
    for t, start in enumerate(range(0, n, batch), 1):
        rows = order[start:start + batch]
        loss = _core.mlp_loss_grad(grad, work, ref_p, x[rows], y[rows], *net)
        total += loss * len(rows)
        if adam:
            _core.adam_step(ref_p, ref_state[:count], ref_state[count:], grad, 0.05, 0.9, 0.999, 1e-8, 0.0, False, t,
                            _core.OPT_KERAS)
        else:
            _core.sgd_step(ref_p, ref_state, grad, 0.05, 0.9, 0.0, 0.0, True, False, _core.OPT_KERAS)

    # one call, then the same epoch in two chunks: both equal the step-by-step loop bit for bit
    for cuts in ([0, 5], [0, 2, 5]):
        p, s, got, t = params.copy(), state.copy(), 0.0, 0
        for b0, b1 in zip(cuts, cuts[1:]):
            part, t = _core.mlp_epoch(p, s, grad, work, x, y, order, *net, batch, b0, b1, step_args(adam, t))
            got += part
        assert t == (5 if adam else 0)
        np.testing.assert_array_equal(p, ref_p)
        np.testing.assert_array_equal(s, ref_state)
        assert got == pytest.approx(total, rel=1e-14)

    # no order: the rows in place, the same as an identity permutation
    p1, p2 = params.copy(), params.copy()
    _core.mlp_epoch(p1, state.copy(), grad, work, x, y, None, *net, batch, 0, 5, step_args(adam))
    _core.mlp_epoch(p2, state.copy(), grad, work, x, y, np.arange(n), *net, batch, 0, 5, step_args(adam))
    np.testing.assert_array_equal(p1, p2)


def test_epoch_is_bitwise_identical_for_any_thread_count(rng, restore_threads):
    units, n = np.array([60, 300, 10]), 64
    params, x, y = make(rng, tuple(units), n, _core.MLP_OUT_SOFTMAX, np.float32)
    work, grad = np.empty(_core.mlp_workspace_size(units, 32, True), np.float32), np.empty_like(params)
    results = []
    for threads in (1, 2):
        cnn.set_num_threads(threads)
        p, s = params.copy(), np.zeros(2 * params.size, np.float32)
        loss, _ = _core.mlp_epoch(p, s, grad, work, x, y, None, units, _core.ACT_RELU, _core.MLP_OUT_SOFTMAX,
                                  1e-4, 32, 0, 2, step_args(True))
        results.append((loss, p))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


def epoch_args():
    units, n = np.array([3, 4, 2]), 6
    count = 4 * 4 + 5 * 2
    return dict(params=np.ones(count), state=np.zeros(count), grad=np.empty(count),
                work=np.empty(_core.mlp_workspace_size(units, 3, True)), x=np.ones((n, 3)), y=np.zeros((n, 2)),
                order=np.arange(n), units=units, hidden=_core.ACT_TANH, output=_core.MLP_OUT_SOFTMAX, alpha=1e-4,
                batch=3, begin=0, end=2, opt=step_args(False))


EPOCH_BAD = {
    "units too short": ("units", np.array([3]), ValueError, "'units'"),
    "units zero width": ("units", np.array([3, 0, 2]), ValueError, "'units'"),
    "units float": ("units", np.array([3.0, 4.0, 2.0]), TypeError, "'units'"),
    "hidden softmax": ("hidden", _core.ACT_LEAKY_RELU, ValueError, "'hidden'"),
    "output code": ("output", 9, ValueError, "'output'"),
    "batch too large": ("batch", 7, ValueError, "'batch'"),
    "batch zero": ("batch", 0, ValueError, "'batch'"),
    "end past the batches": ("end", 3, ValueError, "'end'"),
    "begin after end": ("begin", 3, ValueError, "'begin'"),
    "order out of range": ("order", np.array([0, 1, 2, 3, 4, 6]), ValueError, "'order'"),
    "order wrong length": ("order", np.arange(5), ValueError, "'order'"),
    "state for adam too short": ("opt", step_args(True), ValueError, "'state'"),
    "work too small": ("work", np.empty(10), ValueError, "'work'"),
    "params wrong length": ("params", np.ones(25), ValueError, "'params'"),
    "y wrong width": ("y", np.zeros((6, 3)), ValueError, "'y'"),
    "x float32": ("x", np.ones((6, 3), np.float32), TypeError, "'y'"),
    "negative step count": ("opt", (False, 0.1, 0.9, True, 0.9, 0.999, 1e-8, -1), ValueError, "'t'"),
    "opt not a tuple": ("opt", 0.1, TypeError, "argument"),
}


def test_valid_epoch_call_works():
    args = epoch_args()
    total, t = _core.mlp_epoch(*args.values())
    assert t == 0  # SGD counts no steps: only Adam's t advances
    # the same epoch a batch at a time. y is all zeros, so the first batch's cross-entropy is 0 and its loss is the
    # L2 term alone: alpha/2 · Σ coefs² / 3 rows, over 3·4 + 4·2 = 20 unit weights, times its 3 rows
    again = epoch_args()
    first, _ = _core.mlp_epoch(*{**again, "end": 1}.values())
    assert first == pytest.approx(3 * 0.5 * 1e-4 * 20 / 3, rel=1e-12)
    second, _ = _core.mlp_epoch(*{**again, "begin": 1}.values())
    assert first + second == pytest.approx(total, rel=1e-14)
    np.testing.assert_array_equal(again["params"], args["params"])
    assert not np.array_equal(args["params"], np.ones_like(args["params"]))  # the two steps moved the weights


@pytest.mark.parametrize("case", sorted(EPOCH_BAD))
def test_epoch_bad_input_raises(case):
    key, value, error, words = EPOCH_BAD[case]
    args = epoch_args()
    args[key] = value
    with pytest.raises(error, match=words):
        _core.mlp_epoch(*args.values())


@pytest.mark.parametrize("name,value,words", [("alpha", -1.0, "alpha must be >= 0"),
                                              ("learning_rate_init", 0.0, "learning_rate_init must be > 0"),
                                              ("momentum", 1.5, "momentum must be <= 1")])
def test_epoch_hyperparameters_are_checked_by_the_estimator(name, value, words):
    """mlp_epoch checks memory only; the meaning of its hyperparameters is the estimator's to check."""
    from cnn.sklearn import MLPClassifier

    with pytest.raises(ValueError, match=words):
        MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", max_iter=1, **{name: value}).fit(np.ones((6, 3)),
                                                                                              np.arange(6) % 2)


def test_epoch_outputs_must_not_alias():
    args = epoch_args()
    args["grad"] = args["params"]
    with pytest.raises(ValueError, match="must not overlap"):
        _core.mlp_epoch(*args.values())
    args = epoch_args()
    args["work"] = np.empty(args["work"].size + 36)
    args["x"] = args["work"][:18].reshape(6, 3)
    with pytest.raises(ValueError, match="must not overlap"):
        _core.mlp_epoch(*args.values())


def test_workspace_size_bad_input_raises():
    assert _core.mlp_workspace_size(np.array([3, 4, 2]), 5, False) == 5 * 4
    # training: the layers and their deltas, then room to gather a batch's y rows, weights and (dense) x rows
    assert _core.mlp_workspace_size(np.array([3, 4, 2]), 5, True) == 5 * (2 * (4 + 2) + 2 + 1 + 3)
    assert _core.mlp_workspace_size(np.array([3, 4, 2]), 5, True, True) == 5 * (2 * (4 + 2) + 2 + 1)
    with pytest.raises(ValueError, match="'n'"):
        _core.mlp_workspace_size(np.array([3, 4, 2]), 0, True)
    with pytest.raises(ValueError, match="'units'"):
        _core.mlp_workspace_size(np.array([3, -4, 2]), 5, True)
    with pytest.raises(TypeError, match="'units'"):
        _core.mlp_workspace_size([3, 4, 2], 5, True)
