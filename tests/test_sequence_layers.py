"""Embedding (embedding.c), TimeDistributed and Bidirectional against torch: forward, input and weight gradients."""
import numpy as np
import pytest
import torch

import cnn
from cnn import _core, layers
from cnn.interop import from_torch
from conftest import DTYPES, assert_close

TDTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def test_embedding_worked_example():
    """embedding.c's comment: ids [2, 0, 2] pick rows 2, 0, 2; dy = ones scatters 1, 0, 2 times into the rows."""
    table = np.array([[1.0, 2], [3, 4], [5, 6]])
    ids = np.array([2, 0, 2])
    y = np.empty((3, 2))
    _core.embedding_forward(y, ids, table)
    np.testing.assert_array_equal(y, [[5, 6], [1, 2], [5, 6]])
    dt = np.full((3, 2), 7.0)
    _core.embedding_backward(dt, np.ones((3, 2)), ids, False)
    np.testing.assert_array_equal(dt, [[1, 1], [0, 0], [2, 2]])
    _core.embedding_backward(dt, np.ones((3, 2)), ids)
    np.testing.assert_array_equal(dt, [[2, 2], [0, 0], [4, 4]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,length,vocab,dim", [(3, 7, 11, 5), (1, 1, 1, 1), (4, 9, 3, 130)])
def test_embedding_matches_torch(n, length, vocab, dim, dtype):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(vocab, dim).to(TDTYPE[dtype])
    model = from_torch(cnn.Sequential([layers.Embedding(vocab, dim, input_shape=(length,))], dtype=dtype), emb)
    ids = np.random.default_rng(n).integers(0, vocab, (n, length))
    layer = model.layers[0]
    y = layer.forward(ids.astype(dtype))
    out = emb(torch.tensor(ids))
    assert_close(y, out.detach().numpy(), dtype)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    (out * torch.tensor(dy)).sum().backward()
    assert layer.backward(dy, need_dx=False) is None
    assert_close(layer.grads[0], emb.weight.grad.numpy(), dtype)


def test_embedding_rejects_bad_ids():
    model = cnn.Sequential([layers.Embedding(4, 2, input_length=3)])
    model.build()
    for bad in ([[0, 1, 4]], [[0, -1, 2]], [[0, 1.5, 2]]):
        with pytest.raises(ValueError, match=r"ids in \[0, 4\)"):
            model.predict(np.array(bad), verbose=0)
    with pytest.raises(ValueError, match="'ids' must hold row indices"):
        _core.embedding_forward(np.empty((1, 2)), np.array([9]), np.ones((4, 2)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_time_distributed_dense_matches_torch_linear(dtype):
    torch.manual_seed(1)
    lin = torch.nn.Linear(5, 3).to(TDTYPE[dtype])
    model = from_torch(cnn.Sequential([layers.TimeDistributed(layers.Dense(3), input_shape=(7, 5))], dtype=dtype),
                       lin)
    layer = model.layers[0]
    x = np.random.default_rng(2).standard_normal((4, 7, 5)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    out = lin(xt)
    y = layer.forward(x)
    assert y.shape == (4, 7, 3) and model.output_shape == (7, 3)
    assert_close(y, out.detach().numpy(), dtype)
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    (out * torch.tensor(dy)).sum().backward()
    assert_close(layer.backward(dy), xt.grad.numpy(), dtype)
    assert_close(layer.grads[0], lin.weight.grad.numpy().T, dtype)
    assert_close(layer.grads[1], lin.bias.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_bidirectional_matches_torch(kind, return_sequences, dtype):
    n, t, inp, units = 3, 6, 4, 5
    torch.manual_seed(2)
    module = getattr(torch.nn, "RNN" if kind == "SimpleRNN" else kind)(inp, units, batch_first=True,
                                                                       bidirectional=True).to(TDTYPE[dtype])
    layer = layers.Bidirectional(getattr(layers, kind)(units, return_sequences=return_sequences),
                                 input_shape=(t, inp))
    model = from_torch(cnn.Sequential([layer], dtype=dtype), module)
    x = np.random.default_rng(4).standard_normal((n, t, inp)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    out, _ = module(xt)
    # torch's last step of the reverse direction is the one that read x_0; Keras returns each direction's last
    want = out if return_sequences else torch.cat([out[:, -1, :units], out[:, 0, units:]], dim=1)
    y = layer.forward(x)
    assert y.shape == (n,) + model.output_shape
    assert_close(y, want.detach().numpy(), dtype)
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(dtype)
    (want * torch.tensor(dy)).sum().backward()
    assert_close(layer.backward(dy), xt.grad.numpy(), dtype)
    grads = from_torch(cnn.Sequential([layers.Bidirectional(getattr(layers, kind)(units, return_sequences=
                                                                                  return_sequences),
                                                            input_shape=(t, inp))], dtype="float64"),
                       _grads_as_module(module))
    for ours, theirs, name in zip(layer.grads, grads.layers[0].weights, ["kernel", "recurrent", "bias"] * 2):
        if name == "bias" and kind != "GRU":  # the converted 'bias' is b_ih + b_hh; each gets the bias's gradient
            theirs = theirs / 2
        assert_close(ours, theirs, dtype)


def _grads_as_module(module):
    """A copy of module whose parameters hold module's gradients, for interop to lay them out as cnn's."""
    import copy
    grads = copy.deepcopy(module).double()
    with torch.no_grad():
        for p, q in zip(grads.parameters(), module.parameters()):
            p.copy_(q.grad)
    return grads


@pytest.mark.parametrize("mode", ["sum", "ave", "mul"])
def test_bidirectional_merge_modes(mode):
    layer = layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode=mode, input_shape=(4, 2))
    model = cnn.Sequential([layer], dtype="float64", seed=0)
    model.build()
    x = np.random.default_rng(6).standard_normal((2, 4, 2))
    y = layer.forward(x).copy()
    yf = layer.forward_layer.forward(x).copy()
    yb = layer.backward_layer.forward(x)[:, ::-1].copy()
    want = {"sum": yf + yb, "ave": (yf + yb) / 2, "mul": yf * yb}[mode]
    np.testing.assert_allclose(y, want, rtol=1e-14)
    layer.forward(x)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    dx = layer.backward(dy)
    eps, num = 1e-6, np.empty_like(x)
    for i in np.ndindex(x.shape):  # central differences of Σ y·dy
        old = x[i]
        x[i] = old + eps
        up = (layer.forward(x) * dy).sum()
        x[i] = old - eps
        down = (layer.forward(x) * dy).sum()
        x[i] = old
        num[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_embedding_lstm_model_trains():
    """Embedding → LSTM → Dense in a Sequential: fit runs and lowers the loss."""
    rng = np.random.default_rng(8)
    x = rng.integers(0, 10, (64, 6)).astype(np.float32)
    y = (x[:, 0] > 4).astype(np.int64)  # the first token decides: the LSTM must carry it 6 steps
    model = cnn.Sequential([layers.Embedding(10, 8, input_length=6), layers.LSTM(12),
                            layers.Dense(2, activation="softmax")], seed=0)
    model.compile(optimizer=cnn.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
