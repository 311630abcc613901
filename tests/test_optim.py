"""SGD and Adam updates over 20 steps against torch.optim, and the Keras/sklearn forms."""
import numpy as np
import pytest
import torch

from cnn import _core
from conftest import DTYPES, assert_close

SGD_CASES = [
    dict(momentum=0.0),
    dict(momentum=0.9),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.8, dampening=0.3),
    dict(momentum=0.9, weight_decay=0.01),
    dict(momentum=0.9, nesterov=True, weight_decay=0.05),
    dict(weight_decay=0.1),
]


def gradients(rng, steps, size, dtype):
    return [rng.standard_normal(size).astype(dtype) for _ in range(steps)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SGD_CASES, ids=str)
@pytest.mark.parametrize("size", [1, 7, 1000])
def test_sgd_matches_torch(rng, dtype, case, size):
    lr = 0.05
    p0 = rng.standard_normal(size).astype(dtype)
    gs = gradients(rng, 20, size, dtype)
    pt = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.SGD([pt], lr=lr, **case)
    p, buf = p0.copy(), np.zeros_like(p0)
    for step, g in enumerate(gs):
        pt.grad = torch.tensor(g)
        opt.step()
        _core.sgd_step(p, buf, g, lr, case.get("momentum", 0.0), case.get("dampening", 0.0),
                       case.get("weight_decay", 0.0), case.get("nesterov", False), step == 0, _core.OPT_TORCH)
    assert_close(p, pt.detach().numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_keras_form_equals_torch_at_constant_lr(rng, dtype, nesterov):
    # v = μv - lr·g (Keras, sklearn) and b = μb + g (PyTorch) give the same path when lr is constant
    p0 = rng.standard_normal(50).astype(dtype)
    gs = gradients(rng, 20, 50, dtype)
    a, b = p0.copy(), p0.copy()
    va, vb = np.zeros_like(p0), np.zeros_like(p0)
    for step, g in enumerate(gs):
        _core.sgd_step(a, va, g, 0.1, 0.9, 0.0, 0.0, nesterov, step == 0, _core.OPT_KERAS)
        _core.sgd_step(b, vb, g, 0.1, 0.9, 0.0, 0.0, nesterov, step == 0, _core.OPT_TORCH)
    assert_close(a, b, dtype, factor=10)


def test_sgd_keras_form_by_hand(rng):
    p0, g = rng.standard_normal(5), rng.standard_normal(5)
    p, v = p0.copy(), np.full(5, 0.5)
    _core.sgd_step(p, v, g, 0.1, 0.9, 0.0, 0.01, True, False, _core.OPT_KERAS)
    w = p0 - 0.1 * 0.01 * p0  # decoupled decay first
    v_ref = 0.9 * 0.5 - 0.1 * g
    np.testing.assert_allclose(v, v_ref, rtol=1e-14)
    np.testing.assert_allclose(p, w + 0.9 * v_ref - 0.1 * g, rtol=1e-14)


ADAM_CASES = [
    dict(),
    dict(betas=(0.8, 0.99), eps=1e-6),
    dict(weight_decay=0.01),
    dict(weight_decay=0.05, decoupled=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ADAM_CASES, ids=str)
@pytest.mark.parametrize("size", [1, 7, 1000])
def test_adam_matches_torch(rng, dtype, case, size):
    case = dict(case)
    decoupled = case.pop("decoupled", False)
    lr = 0.01
    p0 = rng.standard_normal(size).astype(dtype)
    gs = gradients(rng, 20, size, dtype)
    pt = torch.tensor(p0, requires_grad=True)
    opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)([pt], lr=lr, **case)
    b1, b2 = case.get("betas", (0.9, 0.999))
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(gs, start=1):
        pt.grad = torch.tensor(g)
        opt.step()
        _core.adam_step(p, m, v, g, lr, b1, b2, case.get("eps", 1e-8), case.get("weight_decay", 0.0),
                        decoupled, t, _core.OPT_TORCH)
    assert_close(p, pt.detach().numpy(), dtype)


def test_adam_keras_form_by_hand(rng):
    # Keras/sklearn: lr_t = lr·sqrt(1-β2^t)/(1-β1^t); p -= lr_t·m/(sqrt(v) + eps)
    p0 = rng.standard_normal(6)
    gs = gradients(rng, 5, 6, np.float64)
    p, m, v = p0.copy(), np.zeros(6), np.zeros(6)
    pr, mr, vr = p0.copy(), np.zeros(6), np.zeros(6)
    for t, g in enumerate(gs, start=1):
        _core.adam_step(p, m, v, g, 0.01, 0.9, 0.999, 1e-7, 0.0, False, t, _core.OPT_KERAS)
        mr = 0.9 * mr + 0.1 * g
        vr = 0.999 * vr + 0.001 * g * g
        pr = pr - 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * mr / (np.sqrt(vr) + 1e-7)
    np.testing.assert_allclose(p, pr, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_penalty(rng, dtype):
    p = rng.standard_normal(301).astype(dtype)
    g0 = rng.standard_normal(301).astype(dtype)
    g = g0.copy()
    value = _core.l2_penalty(g, p, 0.3)
    assert_close(value, 0.15 * np.sum(p.astype(np.float64) ** 2), dtype)
    assert_close(g, g0 + 0.3 * p.astype(np.float64), dtype)
