"""SimpleRNN, LSTM and GRU (rnn.c) against torch.nn.RNN/LSTM/GRU through cnn.interop's weight conversion: the
output, the final states, and the gradients of the input, the initial states and every weight; plus finite
differences, thread-count invariance, go_backwards, stateful and a 50-step Adam run."""
import numpy as np
import pytest
import torch

import cnn
from cnn import _core, layers
from cnn.interop import from_torch, to_torch
from conftest import DTYPES, assert_close, central_differences

KINDS = {"SimpleRNN": (layers.SimpleRNN, torch.nn.RNN), "LSTM": (layers.LSTM, torch.nn.LSTM),
         "GRU": (layers.GRU, torch.nn.GRU)}
TDTYPE = {np.float32: torch.float32, np.float64: torch.float64}
# (n, t, in, units): odd sizes, batch 1, one step, units past the gate pass's 64-unit blocks
SHAPES = [(3, 5, 4, 7), (1, 6, 3, 5), (4, 1, 5, 3), (1, 1, 1, 1), (2, 9, 7, 67), (5, 3, 11, 2)]


def pair(kind, n, t, inp, units, dtype, return_sequences, seed=0, **kw):
    """A one-layer cnn model and a torch module with the same weights (torch's random init, biases included)."""
    ours, theirs = KINDS[kind]
    torch.manual_seed(seed)
    module = theirs(inp, units, batch_first=True).to(TDTYPE[dtype])
    model = cnn.Sequential([ours(units, return_sequences=return_sequences, input_shape=(t, inp), **kw)],
                           dtype=dtype, seed=seed)
    from_torch(model, module)
    return model, module


def torch_grads(kind, module, units):
    """torch's parameter gradients in cnn's layout: kernel, recurrent_kernel, bias (the GRU's both rows)."""
    order = np.r_[units:2 * units, 0:units, 2 * units:3 * units] if kind == "GRU" else slice(None)
    g = {name: p.grad.double().numpy()[order] for name, p in module.named_parameters()}
    bias = np.stack([g["bias_ih_l0"], g["bias_hh_l0"]]) if kind == "GRU" else g["bias_ih_l0"]
    return [g["weight_ih_l0"].T, g["weight_hh_l0"].T, bias]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch(kind, shape, return_sequences, dtype):
    n, t, inp, units = shape
    model, module = pair(kind, n, t, inp, units, dtype, return_sequences)
    layer = model.layers[0]
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, t, inp)).astype(dtype)
    states = [rng.standard_normal((n, units)).astype(dtype) for _ in range(layer.STATES)]
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s[None], requires_grad=True) for s in states]
    out, final = module(xt, tuple(st) if kind == "LSTM" else st[0])
    final = list(final) if kind == "LSTM" else [final]

    y = layer.forward(x, initial_state=states).copy()
    want = out if return_sequences else out[:, -1]
    assert_close(y, want.detach().numpy(), dtype)
    for ours, theirs in zip(layer.states, final):
        assert_close(ours, theirs[0].detach().numpy(), dtype)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dstates = [rng.standard_normal((n, units)).astype(dtype) for _ in range(layer.STATES)]
    loss = (want * torch.tensor(dy)).sum() + sum((f[0] * torch.tensor(d)).sum() for f, d in zip(final, dstates))
    loss.backward()
    dx = layer.backward(dy, dstates=dstates)
    assert_close(dx, xt.grad.numpy(), dtype)
    for ours, theirs in zip(layer.initial_state_grads, st):
        assert_close(ours, theirs.grad[0].numpy(), dtype)
    for ours, theirs in zip(layer.grads, torch_grads(kind, module, units)):
        assert_close(ours, theirs, dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_finite_differences(kind):
    """Every gradient of Σ y·dy in float64 against central differences of the forward itself."""
    n, t, inp, units = 2, 4, 3, 3
    model, _ = pair(kind, n, t, inp, units, np.float64, True)
    layer = model.layers[0]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, t, inp))
    h0 = [rng.standard_normal((n, units)) for _ in range(layer.STATES)]
    dy = rng.standard_normal((n, t, units))
    f = lambda: float((layer.forward(x, initial_state=h0) * dy).sum())  # noqa: E731
    f()
    dx = layer.backward(dy).copy()
    grads = [g.copy() for g in layer.grads]
    dh0 = [g.copy() for g in layer.initial_state_grads]
    np.testing.assert_allclose(dx, central_differences(f, x), rtol=1e-6, atol=1e-8)
    for w, g in zip(layer.weights, grads):
        np.testing.assert_allclose(g, central_differences(f, w), rtol=1e-6, atol=1e-8)
    for s, g in zip(h0, dh0):
        np.testing.assert_allclose(g, central_differences(f, s), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_go_backwards_is_torch_on_the_reversed_sequence(kind):
    """Keras's go_backwards reads x from its last step and returns the outputs in that processing order."""
    model, module = pair(kind, 3, 6, 4, 5, np.float64, True, go_backwards=True)
    layer = model.layers[0]
    x = np.random.default_rng(3).standard_normal((3, 6, 4))
    xt = torch.tensor(x, requires_grad=True)
    out, _ = module(xt.flip(1))
    y = layer.forward(x)
    assert_close(y, out.detach().numpy(), np.float64)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    (out * torch.tensor(dy)).sum().backward()
    assert_close(layer.backward(dy), xt.grad.numpy(), np.float64)
    for ours, theirs in zip(layer.grads, torch_grads(kind, module, 5)):
        assert_close(ours, theirs, np.float64)


def test_worked_example():
    """rnn.c's comment: W = 1, R = 0.5, b = 0, tanh, x = [1, 0] gives h = [tanh 1, tanh(0.5 tanh 1)]."""
    model = cnn.Sequential([layers.SimpleRNN(1, return_sequences=True, input_shape=(2, 1))], dtype="float64")
    model.set_weights([np.ones((1, 1)), np.full((1, 1), 0.5), np.zeros(1)])
    y = model.predict(np.array([[[1.0], [0.0]]]), verbose=0)
    np.testing.assert_allclose(y.ravel(), [np.tanh(1), np.tanh(0.5 * np.tanh(1))], rtol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_bitwise_the_same_for_any_thread_count(kind, restore_threads):
    """33 rows of 70 units: the gate passes and the gemms split over threads."""
    model, _ = pair(kind, 33, 4, 9, 70, np.float32, True)
    layer = model.layers[0]
    x = np.random.default_rng(5).standard_normal((33, 4, 9)).astype(np.float32)
    dy = np.random.default_rng(6).standard_normal((33, 4, 70)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        cnn.set_num_threads(threads)
        y = layer.forward(x).copy()
        dx = layer.backward(dy).copy()
        results.append([y, dx] + [g.copy() for g in layer.grads])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_stateful_carries_the_state_across_batches():
    model, module = pair("LSTM", 2, 3, 4, 5, np.float64, False, stateful=True)
    layer = model.layers[0]
    x = np.random.default_rng(8).standard_normal((2, 6, 4))
    first = layer.forward(x[:, :3]).copy()
    second = layer.forward(x[:, 3:]).copy()
    out, _ = module(torch.tensor(x))
    assert_close(first, out[:, 2].detach().numpy(), np.float64)
    assert_close(second, out[:, 5].detach().numpy(), np.float64)
    layer.reset_states()
    assert_close(layer.forward(x[:, :3]), first, np.float64)
    with pytest.raises(ValueError, match="stateful"):
        layer.forward(x[:1, :3])


def test_return_state_call():
    model, module = pair("LSTM", 2, 3, 4, 5, np.float64, True, return_state=True)
    y, h, c = model.layers[0](np.ones((2, 3, 4)))
    out, (ht, ct) = module(torch.ones(2, 3, 4, dtype=torch.float64))
    assert_close(h, ht[0].detach().numpy(), np.float64)
    assert_close(c, ct[0].detach().numpy(), np.float64)


def test_initializers_and_unit_forget_bias():
    model = cnn.Sequential([layers.LSTM(6, input_shape=(3, 4))], seed=0, dtype="float64")
    model.build()
    kernel, rec, bias = model.get_weights()
    np.testing.assert_allclose(bias, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])
    np.testing.assert_allclose(rec @ rec.T, np.eye(6), atol=1e-12)  # orthogonal rows, as Keras's Orthogonal
    gru = cnn.Sequential([layers.GRU(5, input_shape=(3, 4))], seed=0)
    gru.build()
    assert [w.shape for w in gru.get_weights()] == [(4, 15), (5, 15), (2, 15)]


def test_to_torch_round_trip():
    for kind in KINDS:
        model = cnn.Sequential([KINDS[kind][0](5, input_shape=(3, 4))], seed=1, dtype="float64")
        module = to_torch(model, KINDS[kind][1](4, 5, batch_first=True).double())
        x = np.random.default_rng(9).standard_normal((2, 3, 4))
        out, _ = module(torch.tensor(x))
        assert_close(model.predict(x, verbose=0), out[:, -1].detach().numpy(), np.float64)


def test_bad_arguments():
    with pytest.raises(ValueError, match="recurrent_activation"):
        layers.LSTM(3, recurrent_activation="tanh")
    with pytest.raises(ValueError, match="activation"):
        layers.GRU(3, activation="relu")
    with pytest.raises(ValueError, match="reset_after"):
        layers.GRU(3, reset_after=False)
    with pytest.raises(ValueError, match="time, features"):
        cnn.Sequential([layers.LSTM(3, input_shape=(4,))]).build()
    with pytest.raises(ValueError, match="units"):
        layers.SimpleRNN(0)
    model = cnn.Sequential([layers.LSTM(3, input_shape=(2, 4))])
    with pytest.raises(ValueError, match="initial_state"):
        model.build()
        model.layers[0].forward(np.ones((1, 2, 4), np.float32), initial_state=[np.ones((1, 3))])
    with pytest.raises(TypeError, match="torch"):
        from_torch(model, "lstm")
    with pytest.raises(ValueError, match="batch_first"):
        from_torch(model, torch.nn.LSTM(4, 3))
    with pytest.raises(ValueError, match="cannot pair"):
        from_torch(model, torch.nn.GRU(4, 3, batch_first=True))


def test_binding_rejects_bad_codes_and_shapes():
    x = np.ones((2, 3, 4))
    w, r = np.ones((4, 12)), np.ones((3, 12))
    cache = np.empty(_core.rnn_scratch_size(x.shape, 3, _core.CELL_LSTM, False))
    args = [np.empty((2, 3)), None, None, cache, x, w, r, None, None, None]
    with pytest.raises(ValueError, match="cell"):
        _core.rnn_forward(*args, 7, _core.ACT_TANH, False, False)
    with pytest.raises(ValueError, match="act"):
        _core.rnn_forward(*args, _core.CELL_LSTM, _core.ACT_RELU, False, False)
    with pytest.raises(ValueError, match="'r' must have shape"):
        _core.rnn_forward(*args[:6], np.ones((3, 9)), *args[7:], _core.CELL_LSTM, _core.ACT_TANH, False, False)
    with pytest.raises(ValueError, match="'cache'"):
        _core.rnn_forward(*args[:3], cache[1:], *args[4:], _core.CELL_LSTM, _core.ACT_TANH, False, False)
    with pytest.raises(ValueError, match="c0"):
        _core.rnn_forward(np.empty((2, 3)), None, None, np.empty(_core.rnn_scratch_size(x.shape, 3, 0, False)), x,
                          np.ones((4, 3)), np.ones((3, 3)), None, None, np.ones((2, 3)), _core.CELL_RNN,
                          _core.ACT_TANH, False, False)


def lstm_classifier_losses(steps=50):
    """Per-step losses of Adam on an LSTM(16) → Dense(5) classifier, cnn and torch from the same weights."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((64, 12, 6)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    model = cnn.Sequential([layers.LSTM(16, input_shape=(12, 6)), layers.Dense(5, activation="softmax")], seed=0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.fc = torch.nn.LSTM(6, 16, batch_first=True), torch.nn.Linear(16, 5)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    torch.manual_seed(0)
    net = Net()
    # cnn's LSTM has one bias, torch's two that add up: Adam would move each of b_ih and b_hh by up to lr, their sum
    # by up to twice that. So torch trains b_ih alone, holding the sum (to_torch writes it there), b_hh at zero.
    to_torch(from_torch(model, net), net)
    net.lstm.bias_hh_l0.requires_grad_(False)
    model.compile(optimizer=cnn.optimizers.Adam(1e-2, variant="torch"), loss="sparse_categorical_crossentropy")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ours, theirs = [], []
    for step in range(steps):
        batch = slice(step % 4 * 16, step % 4 * 16 + 16)
        ours.append(model.train_on_batch(x[batch], y[batch]))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.tensor(x[batch])), torch.tensor(y[batch]))
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    return np.array(ours), np.array(theirs)


def test_lstm_classifier_adam_follows_torch():
    ours, theirs = lstm_classifier_losses()
    assert theirs[-1] < theirs[0] * 0.8  # it learns: the comparison is over a moving trajectory
    assert np.abs(ours - theirs).max() <= 1e-4, np.abs(ours - theirs).max()
