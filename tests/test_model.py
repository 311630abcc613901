"""Sequential end to end: each fit argument, History, evaluate/predict, weights, Input, initializers,
L2 regularisation, progress output, and per-step parity with PyTorch for SGD-Nesterov and Adam."""
import re

import numpy as np
import pytest
import torch

import cnn
from cnn.callbacks import Callback
from cnn.layers import Dense, Input
from keras_helpers import data, rel_err, small_model


class BatchRecorder(Callback):
    """Keeps the batch logs and the first row of every training batch the model sees."""

    def __init__(self):
        super().__init__()
        self.batches, self.logs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(self.model.layers[0]._cache[1].copy())
        self.logs.append(dict(logs))


def test_fit_returns_history_with_keras_names():
    x, y = data()
    model = small_model()
    h = model.fit(x, y, batch_size=16, epochs=3, verbose=0, validation_split=0.25)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in h.history.values())
    assert h.epoch == [0, 1, 2]
    assert h.params == {"verbose": 0, "epochs": 3, "steps": 3}  # 45 training rows / 16 -> 3 steps
    assert model.history is h
    assert all(0 <= a <= 1 for a in h.history["accuracy"] + h.history["val_accuracy"])


def test_fit_without_metrics_logs_only_loss():
    x, y = data()
    model = small_model(metrics=())
    h = model.fit(x, y, epochs=2, verbose=0, validation_data=(x[:10], y[:10]))
    assert set(h.history) == {"loss", "val_loss"}


def test_batch_size_sets_the_steps_and_the_batch_shapes():
    x, y = data(n=37)
    model, rec = small_model(), BatchRecorder()
    h = model.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[rec], shuffle=False)
    assert h.params["steps"] == 4
    assert [len(b) for b in rec.batches] == [10, 10, 10, 7]
    default = small_model()
    assert default.fit(x, y, verbose=0).params["steps"] == 2  # Keras' default batch_size 32


def test_shuffle_false_is_train_on_batch_in_order():
    x, y = data(n=25)
    a, b = small_model(), small_model()
    ha = a.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    losses = []
    for _ in range(2):
        losses.append([b.train_on_batch(x[s:s + 10], y[s:s + 10])[0] for s in range(0, 25, 10)])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # the epoch loss is the sample-weighted mean of the batch losses
    for epoch, batch_losses in enumerate(losses):
        expected = (10 * batch_losses[0] + 10 * batch_losses[1] + 5 * batch_losses[2]) / 25
        assert ha.history["loss"][epoch] == pytest.approx(expected, rel=1e-12)


def test_shuffle_true_visits_every_row_once_per_epoch_in_a_new_order():
    x, y = data(n=30)
    x[:, 0] = np.arange(30)
    model, rec = small_model(), BatchRecorder()
    model.fit(x, y, batch_size=7, epochs=2, verbose=0, callbacks=[rec])
    firsts = [np.concatenate([b[:, 0] for b in rec.batches[:5]]), np.concatenate([b[:, 0] for b in rec.batches[5:]])]
    for order in firsts:
        assert sorted(order) == list(range(30))
    assert not np.array_equal(firsts[0], firsts[1])
    assert not np.array_equal(firsts[0], np.arange(30))


def test_validation_split_takes_the_last_rows_before_shuffling():
    x, y = data(n=40)
    x[:, 0] = np.arange(40)
    model, rec = small_model(), BatchRecorder()
    h = model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_split=0.25, callbacks=[rec])
    seen = np.sort(np.concatenate([b[:, 0] for b in rec.batches]))
    np.testing.assert_array_equal(seen, np.arange(30))  # floor(40 * 0.75) = 30 training rows
    assert h.history["val_loss"][0] == model.evaluate(x[30:], y[30:], verbose=0)[0]
    assert h.history["val_accuracy"][0] == model.evaluate(x[30:], y[30:], verbose=0)[1]


def test_validation_split_floor_and_errors():
    x, y = data(n=10)
    model, rec = small_model(), BatchRecorder()
    model.fit(x, y, batch_size=100, epochs=1, verbose=0, validation_split=0.33, callbacks=[rec])
    assert len(rec.batches[0]) == 6  # floor(10 * 0.67) = 6
    with pytest.raises(ValueError, match="leaves no samples"):
        small_model().fit(x, y, verbose=0, validation_split=0.95)  # floor(0.5) = 0 rows
    with pytest.raises(ValueError):
        small_model().fit(x, y, verbose=0, validation_split=1.0)


def test_validation_data_overrides_validation_split():
    x, y = data(n=40)
    xv, yv = data(n=9, seed=5)
    model, rec = small_model(), BatchRecorder()
    h = model.fit(x, y, batch_size=40, verbose=0, validation_split=0.5, validation_data=(xv, yv), callbacks=[rec])
    assert len(rec.batches[0]) == 40
    assert h.history["val_loss"][0] == model.evaluate(xv, yv, verbose=0)[0]
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, verbose=0, validation_data=(xv,))


def test_initial_epoch_counts_epochs_from_it():
    x, y = data()
    h = small_model().fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert h.epoch == [3, 4]
    assert small_model().fit(x, y, epochs=2, initial_epoch=2, verbose=0).history == {}


def test_fit_argument_errors():
    x, y = data()
    model = small_model()
    for kwargs in ({"batch_size": 0}, {"epochs": -1}, {"initial_epoch": -1}, {"verbose": 3}):
        with pytest.raises((TypeError, ValueError)):
            model.fit(x, y, **kwargs)
    with pytest.raises(RuntimeError, match="compile"):
        cnn.Sequential([Dense(2)]).fit(x, y)


def test_verbose_0_is_silent_and_2_prints_one_line_per_epoch(capsys):
    x, y = data()
    small_model().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    small_model().fit(x, y, epochs=2, verbose=2, validation_split=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(r"2/2 - \d+s - \d+(us|ms)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4} - "
                        r"val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}", lines[1])


def test_verbose_1_text_bar_in_keras_format(capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)  # as if tqdm were not installed
    x, y = data()
    small_model().fit(x, y, batch_size=20, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n")
    final = out.split("\r")[-1]
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+(us|ms)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4} *\n", final)


def test_verbose_1_uses_tqdm_when_installed(capsys):
    pytest.importorskip("tqdm")
    x, y = data()
    small_model().fit(x, y, batch_size=20, epochs=1, verbose="auto")
    captured = capsys.readouterr()
    assert "Epoch 1/1" in captured.out
    assert "3/3" in captured.out + captured.err and "loss:" in captured.out + captured.err


def test_evaluate_predict_and_batch_methods():
    x, y = data(n=50)
    model = small_model()
    model.fit(x, y, epochs=2, verbose=0)
    p = model.predict(x, batch_size=7)
    np.testing.assert_allclose(p, model.predict(x, batch_size=50), rtol=1e-14)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    loss = -np.mean(np.log(p[np.arange(50), y]))
    acc = np.mean(p.argmax(axis=1) == y)
    ev = model.evaluate(x, y, batch_size=9, verbose=0)
    assert ev[0] == pytest.approx(loss, rel=1e-12) and ev[1] == acc
    assert model.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx({"loss": loss, "accuracy": acc})
    tb = model.test_on_batch(x, y)
    assert tb[0] == pytest.approx(loss, rel=1e-12) and tb[1] == acc  # accuracy as a fraction, as Keras
    before = model.get_weights()
    loss_tb, acc_tb = model.train_on_batch(x, y)
    assert loss_tb == pytest.approx(loss, rel=1e-12) and acc_tb == acc
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_weights_count_params_and_set_weights_checks():
    model = cnn.Sequential([Input((4,)), Dense(3), Dense(2)])
    model.build()
    assert model.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    w = model.get_weights()
    assert [a.shape for a in w] == [(4, 3), (3,), (3, 2), (2,)]
    new = [np.full_like(a, i) for i, a in enumerate(w)]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expects a list of 4"):
        model.set_weights(new[:3])
    with pytest.raises(ValueError, match="shape"):
        model.set_weights([np.zeros((3, 4))] + new[1:])


def test_input_is_not_a_layer_of_the_model():
    model = cnn.Sequential([Input((6,)), Dense(2)])
    assert len(model.layers) == 1 and model.input_shape == (6,)
    model.build()
    assert model.layers[0].get_weights()[0].shape == (6, 2)
    assert model.get_layer(index=0).name == "dense"
    with pytest.raises(ValueError, match="first element"):
        cnn.Sequential([Dense(2), Input((3,))])
    keras_style = cnn.Sequential([Dense(2)])
    keras_style.build((None, 6))
    assert keras_style.layers[0].input_shape == (6,)


@pytest.mark.parametrize("name,var", [("glorot_uniform", lambda i, o: 2 / (i + o)), ("he_normal", lambda i, o: 2 / i),
                                      ("he_uniform", lambda i, o: 2 / i), ("random_normal", lambda i, o: 0.05 ** 2)])
def test_initializers_by_name_have_keras_variance(name, var):
    model = cnn.Sequential([Input((400,)), Dense(300, kernel_initializer=name)], seed=3)
    model.build()
    w = model.layers[0].get_weights()[0]
    assert np.var(w) == pytest.approx(var(400, 300), rel=0.02)
    assert abs(np.mean(w)) < 0.01 * np.sqrt(var(400, 300)) * 10
    if name == "glorot_uniform":
        assert np.abs(w).max() <= np.sqrt(6 / 700)
    if name == "he_normal":  # truncated at two standard deviations of the untruncated normal
        assert np.abs(w).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978
    np.testing.assert_array_equal(model.layers[0].get_weights()[1], 0)


def test_zeros_initializer_and_unknown_name():
    model = cnn.Sequential([Input((3,)), Dense(2, kernel_initializer="zeros")])
    model.build()
    np.testing.assert_array_equal(model.get_weights()[0], 0)
    with pytest.raises(ValueError, match="unknown initializer"):
        Dense(2, kernel_initializer="nope")


def test_l2_penalty_and_gradient_match_a_hand_computation():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = cnn.Sequential([Input((3,)), Dense(2, kernel_regularizer=cnn.regularizers.l2(0.3))], dtype="float64",
                           seed=1)
    model.compile(optimizer=cnn.optimizers.SGD(0.5), loss="mse")
    model.build()
    w, b = model.get_weights()
    out = x @ w + b
    expected = np.mean((out - t) ** 2) + 0.3 * np.sum(w ** 2)
    assert model.test_on_batch(x, t) == pytest.approx(expected, rel=1e-13)
    grad_w = x.T @ (2 * (out - t) / out.size) + 2 * 0.3 * w  # the bias is not regularised
    grad_b = (2 * (out - t) / out.size).sum(axis=0)
    assert model.train_on_batch(x, t) == pytest.approx(expected, rel=1e-13)
    w1, b1 = model.get_weights()
    assert rel_err(w1, w - 0.5 * grad_w) < 1e-13
    assert rel_err(b1, b - 0.5 * grad_b) < 1e-13


def _torch_net(model):
    layers = []
    for layer in model.layers:
        lin = torch.nn.Linear(*layer.get_weights()[0].shape, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.get_weights()[0].T))
            lin.bias.copy_(torch.from_numpy(layer.get_weights()[1]))
        layers += [lin] + ({"tanh": [torch.nn.Tanh()], "relu": [torch.nn.ReLU()]}.get(layer.activation.name, []))
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_twenty_steps_match_pytorch(opt):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((33, 6)), rng.integers(0, 4, 33)
    model = cnn.Sequential([Input((6,)), Dense(9, activation="tanh"), Dense(5, activation="relu"),
                            Dense(4, activation="softmax")], seed=2, dtype="float64")
    if opt == "sgd":
        model.compile(cnn.optimizers.SGD(0.05, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy")
    else:
        model.compile(cnn.optimizers.Adam(0.01, variant="torch"), "sparse_categorical_crossentropy")
    model.build()
    net = _torch_net(model)
    topt = (torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True) if opt == "sgd"
            else torch.optim.Adam(net.parameters(), lr=0.01))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    batches = [(s, min(s + 10, 33)) for s in range(0, 33, 10)]
    ours, theirs = [], []
    for step in range(20):
        s, e = batches[step % len(batches)]
        ours.append(model.train_on_batch(x[s:e], y[s:e]))
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt[s:e]), yt[s:e])
        loss.backward()
        topt.step()
        theirs.append(loss.item())
    assert rel_err(ours, theirs) < 1e-10
    torch_w = [p.detach().numpy() for p in net.parameters() if p.ndim == 2]
    for layer, tw in zip(model.layers, torch_w):
        assert rel_err(layer.get_weights()[0], tw.T) < 1e-10
    # and fit (shuffle off) is the same 20 steps: its epoch losses are the batch-size-weighted means
    fitted = cnn.Sequential([Input((6,)), Dense(9, activation="tanh"), Dense(5, activation="relu"),
                             Dense(4, activation="softmax")], seed=2, dtype="float64")
    fitted.compile(cnn.optimizers.SGD(0.05, momentum=0.9, nesterov=True) if opt == "sgd"
                   else cnn.optimizers.Adam(0.01, variant="torch"), "sparse_categorical_crossentropy")
    h = fitted.fit(x, y, batch_size=10, epochs=5, shuffle=False, verbose=0)
    sizes = np.array([e - s for s, e in batches])
    per_epoch = [np.dot(sizes, theirs[4 * k:4 * k + 4]) / 33 for k in range(5)]
    assert rel_err(h.history["loss"], per_epoch) < 1e-10


def test_text_bar_redraws_at_most_ten_times_a_second(capsys, monkeypatch):
    import time
    monkeypatch.setitem(__import__("sys").modules, "tqdm.auto", None)
    x, y = data(n=3000)
    start = time.perf_counter()
    small_model().fit(x, y, batch_size=1, epochs=1, verbose=1)
    elapsed = time.perf_counter() - start
    draws = capsys.readouterr().out.count("\r")
    assert 1 <= draws <= elapsed * 10 + 2  # 3,000 steps, yet only the interval-limited redraws


def test_a_layer_that_adds_into_its_gradients_gets_them_zeroed_each_step():
    """Dense and Conv2D overwrite their gradient views; a layer keeping the Layer default (overwrites_grads
    False) adds into them, so the model must zero its views before every step, and only those."""
    from cnn.layers.base import Layer

    class Scale(Layer):  # y = x·s per feature
        def weight_specs(self):
            return [("scale", self.input_shape, lambda shape, rng, dtype: np.ones(shape, dtype))]

        def forward(self, x, training=False):
            self._x = x
            return x * self.weights[0]

        def backward(self, dy, need_dx=True):
            self.grads[0] += (dy * self._x).sum(axis=0)
            return dy * self.weights[0] if need_dx else None

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = cnn.Sequential([Scale(input_shape=(3,)), Dense(2)], seed=0, dtype="float64")
    model.compile(cnn.optimizers.SGD(0.0), "mse")
    grads = []
    for _ in range(3):
        model.train_on_batch(x, y)
        grads.append(model._grads.copy())
    assert np.abs(grads[0]).min() > 0
    np.testing.assert_array_equal(grads[1], grads[0])  # lr 0: the same batch gives the same gradient
    np.testing.assert_array_equal(grads[2], grads[0])
    kernel = model.layers[1].weights[0]
    dz = 2 * (x @ kernel + model.layers[1].weights[1] - y) / y.size
    np.testing.assert_allclose(model.layers[0].grads[0], (dz @ kernel.T * x).sum(axis=0), rtol=1e-12)
