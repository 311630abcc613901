"""cnn.Model(inputs, outputs), Keras's functional API: training against a PyTorch twin of the same graph from the
same weights (shared layers, branches, merges), several inputs and outputs, save/load/pickle, Keras's layer
order and summary, and the errors for graphs and arguments that do not fit."""
import pickle

import numpy as np
import pytest
import torch

import cnn
from cnn.layers import Add, Concatenate, Conv2D, Dense, Flatten, Input, Multiply
from cnn.layers.node import KerasTensor
from cnn.models import load_model


def branching(dtype="float64", seed=0):
    """A residual graph: a layer shared by two calls, a sum, a product, a concatenation and two outputs."""
    x = Input((5,), name="x")
    h = Dense(6, activation="tanh", name="h")(x)
    shared = Dense(6, activation="tanh", name="shared")
    a = shared(h)
    b = shared(a)
    s = Add(name="add")([h, b])
    m = Multiply(name="mul")([s, a])
    c = Concatenate(name="cat")([m, h])
    cls = Dense(3, activation="softmax", name="cls")(c)
    reg = Dense(2, name="reg")(s)
    return cnn.Model(x, [cls, reg], seed=seed, dtype=dtype)


def linear(layer):
    kernel, bias = layer.get_weights()
    lin = torch.nn.Linear(*kernel.shape, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(kernel.T))
        lin.bias.copy_(torch.tensor(bias))
    return lin


def conv(layer):
    kernel, bias = layer.get_weights()
    c = torch.nn.Conv2d(kernel.shape[1], kernel.shape[0], kernel.shape[2:], padding="same", dtype=torch.float64)
    with torch.no_grad():
        c.weight.copy_(torch.tensor(kernel))
        c.bias.copy_(torch.tensor(bias))
    return c


def branching_torch(model):
    h, shared, cls, reg = (linear(model.get_layer(n)) for n in ("h", "shared", "cls", "reg"))

    def forward(x):
        hx = torch.tanh(h(x))
        a = torch.tanh(shared(hx))
        b = torch.tanh(shared(a))
        s = hx + b
        return [cls(torch.cat([s * a, hx], dim=1)), reg(s)]
    return forward, [p for m in (h, shared, cls, reg) for p in m.parameters()]


def conv_graph():
    x = Input((2, 6, 5), name="img")
    c1 = Conv2D(3, 3, padding="same", activation="tanh", name="c1")(x)
    shared = Conv2D(3, 3, padding="same", activation="tanh", name="sc")
    a = shared(c1)
    s = Add(name="add")([c1, shared(a)])
    cat = Concatenate(axis=1, name="cat")([s, a])  # NCHW: axis 1 joins channels
    out = Dense(4, activation="softmax", name="out")(Flatten(name="flat")(cat))
    return cnn.Model(x, out, seed=1, dtype="float64")


def conv_torch(model):
    c1, sc, out = conv(model.get_layer("c1")), conv(model.get_layer("sc")), linear(model.get_layer("out"))

    def forward(x):
        h = torch.tanh(c1(x))
        a = torch.tanh(sc(h))
        s = h + torch.tanh(sc(a))
        return [out(torch.cat([s, a], dim=1).flatten(1))]
    return forward, [p for m in (c1, sc, out) for p in m.parameters()]


def test_branching_graph_trains_as_its_torch_twin_step_by_step():
    model = branching()
    model.compile(optimizer=cnn.optimizers.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5])
    forward, params = branching_torch(model)
    opt = torch.optim.SGD(params, lr=0.1)
    rng = np.random.default_rng(0)
    x, y1, y2 = rng.standard_normal((9, 5)), rng.integers(0, 3, 9), rng.standard_normal((9, 2))
    xt, y1t, y2t = torch.tensor(x), torch.tensor(y1), torch.tensor(y2)
    for _ in range(12):
        opt.zero_grad()
        logits, reg = forward(xt)
        loss = torch.nn.functional.cross_entropy(logits, y1t) + 0.5 * torch.nn.functional.mse_loss(reg, y2t)
        loss.backward()
        opt.step()
        assert abs(model.train_on_batch(x, [y1, y2]) - loss.item()) < 1e-10
    np.testing.assert_allclose(model.get_layer("shared").get_weights()[0], params[2].detach().numpy().T, atol=1e-10)


def test_conv_graph_with_a_shared_conv_and_channel_concat_trains_as_torch():
    model = conv_graph()
    model.compile(optimizer=cnn.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    forward, params = conv_torch(model)
    opt = torch.optim.SGD(params, lr=0.05)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((1, 2, 6, 5)), rng.integers(0, 4, 1)  # batch 1
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(torch.tensor(x))[0], torch.tensor(y))
        loss.backward()
        opt.step()
        assert abs(model.train_on_batch(x, y) - loss.item()) < 1e-10


def assert_same(a, b):
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


def test_residual_graph_trains_saves_loads_pickles_and_predicts_identically(tmp_path):
    model = branching("float32", seed=3)
    model.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, metrics=["accuracy"])
    rng = np.random.default_rng(2)
    x, y1, y2 = rng.standard_normal((40, 5)), rng.integers(0, 3, 40), rng.standard_normal((40, 2))
    history = model.fit(x, [y1, y2], epochs=4, batch_size=8, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "cls_accuracy", "reg_accuracy", "val_loss", "val_cls_accuracy",
                                    "val_reg_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    out = model.predict(x, verbose=0)
    assert isinstance(out, list) and [o.shape for o in out] == [(40, 3), (40, 2)]
    model.save(tmp_path / "m.npz")
    copies = [load_model(tmp_path / "m.npz"), pickle.loads(pickle.dumps(model))]
    for copy in copies:
        assert type(copy) is type(model) and [layer.name for layer in copy.layers] == [la.name for la in model.layers]
        assert_same(copy.predict(x, verbose=0), out)
        assert copy.evaluate(x, {"cls": y1, "reg": y2}, verbose=0) == model.evaluate(x, [y1, y2], verbose=0)
    for m in [model] + copies:  # the optimizer state and the shuffling generator came along
        m.fit(x, [y1, y2], epochs=1, batch_size=8, verbose=0)
    for copy in copies:
        assert_same(copy.get_weights(), model.get_weights())
        assert_same(copy.predict(x, verbose=0), model.predict(x, verbose=0))


def test_several_inputs_by_list_and_by_name():
    a, b = Input((3,), name="a"), Input((2,), name="b")
    y = Dense(1, name="y")(Concatenate(name="cat")([Dense(4, name="da")(a), b]))
    model = cnn.Model([a, b], y, seed=0)
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    xa, xb, t = rng.standard_normal((6, 3)), rng.standard_normal((6, 2)), rng.standard_normal((6, 1))
    out = model.predict([xa, xb], verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (6, 1)
    np.testing.assert_array_equal(model.predict({"b": xb, "a": xa}, verbose=0), out)
    assert np.isfinite(model.fit({"a": xa, "b": xb}, t, epochs=2, verbose=0).history["loss"]).all()


def test_layer_order_and_get_weights_follow_keras():
    # Keras lists layers deepest first (longest path to an output), ties in the order the walk from the
    # outputs met them: x → d1 → d2 and x → d3 meet at add([d3, d2]), so d3 comes before d2
    x = Input((3,), name="x")
    d1, d2, d3 = Dense(4, name="d1"), Dense(2, name="d2"), Dense(2, name="d3")
    out = Add(name="add")([d3(x), d2(d1(x))])
    model = cnn.Model(x, out, seed=0)
    assert [layer.name for layer in model.layers] == ["x", "d1", "d3", "d2", "add"]
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 4), (4,), (3, 2), (2,), (4, 2), (2,)]
    assert_same(weights, d1.get_weights() + d3.get_weights() + d2.get_weights())
    model.set_weights([w + 1 for w in weights])
    assert_same(model.get_weights(), [w + 1 for w in weights])
    assert isinstance(model, cnn.Model) and isinstance(cnn.Sequential(), cnn.Model)


def test_summary_has_keras_connected_to_column():
    lines = []
    branching().summary(print_fn=lines.append, line_length=108)
    text = lines[0].splitlines()
    assert text[0] == 'Model: "functional"' and all(len(row) == 108 for row in text[1:-3])
    assert [c.strip() for c in text[2].strip("┃").split("┃")] == ["Layer (type)", "Output Shape", "Param #",
                                                                  "Connected to"]
    rows = [[c.strip() for c in row.strip("│").split("│")] for row in text[4:-3] if row.startswith("│")]
    assert rows == [
        ["x (InputLayer)", "(None, 5)", "0", "-"],
        ["h (Dense)", "(None, 6)", "36", "x[0][0]"],
        ["shared (Dense)", "(None, 6)", "42", "h[0][0], shared[0][0]"],
        ["add (Add)", "(None, 6)", "0", "h[0][0], shared[1][0]"],
        ["mul (Multiply)", "(None, 6)", "0", "add[0][0], shared[0][0]"],
        ["cat (Concatenate)", "(None, 12)", "0", "mul[0][0], h[0][0]"],
        ["cls (Dense)", "(None, 3)", "39", "cat[0][0]"],
        ["reg (Dense)", "(None, 2)", "14", "add[0][0]"]]
    assert text[-3] == " Total params: 131 (1.02 KB)"


def test_a_chain_prints_without_connected_to_as_in_keras():
    x = Input((3,))
    lines = []
    cnn.Model(x, Dense(2)(Dense(4)(x))).summary(print_fn=lines.append, line_length=88)
    assert "Connected to" not in lines[0] and "input_layer (InputLayer)" in lines[0]


def test_input_is_a_symbolic_tensor_that_also_starts_a_sequential():
    x = Input((3, 4))
    assert isinstance(x, KerasTensor) and x.shape == (None, 3, 4)
    seq = cnn.Sequential([x, Flatten(), Dense(2)])
    assert seq.input_shape == (3, 4) and seq.predict(np.zeros((1, 3, 4)), verbose=0).shape == (1, 2)


def test_graph_errors_name_what_is_wrong():
    x, other = Input((3,), name="x"), Input((3,), name="other")
    y = Add()([Dense(2, name="p")(x), Dense(2, name="q")(other)])
    with pytest.raises(ValueError, match="Graph disconnected: output .* depends on the Input 'other'"):
        cnn.Model(x, y)
    hidden = Dense(3, name="hidden")(x)
    with pytest.raises(ValueError, match="inputs\\[0\\] must come straight from cnn.layers.Input"):
        cnn.Model([hidden], Dense(1)(hidden))
    with pytest.raises(TypeError, match="inputs must be a symbolic tensor"):
        cnn.Model(np.zeros((2, 3)), hidden)
    with pytest.raises(TypeError, match="outputs\\[1\\] must be a symbolic tensor"):
        cnn.Model(x, [hidden, "y"])
    with pytest.raises(TypeError, match="takes inputs= symbolic tensors"):
        Dense(2)(np.zeros((2, 3)))
    shared = Dense(2, name="shared")
    shared(x)
    with pytest.raises(ValueError, match="called on input shape \\(3,\\) and now on \\(4,\\)"):
        shared(Input((4,)))
    with pytest.raises(ValueError, match="the layer name 'hidden' is used 2 times"):
        cnn.Model(x, Dense(1, name="hidden")(hidden))
    model = cnn.Model(x, hidden)
    with pytest.raises(ValueError, match="layer 'hidden' already belongs to model"):
        cnn.Model(x, hidden)
    with pytest.raises(ValueError, match="merges several inputs and cannot be part of a Sequential"):
        cnn.Sequential([Input((3,)), Add()])
    assert model.layers[-1] is hidden._keras_history[0]


def test_data_errors_name_the_argument():
    a, b = Input((3,), name="a"), Input((2,), name="b")
    model = cnn.Model([a, b], [Dense(2, name="o1")(a), Dense(1, name="o2")(b)])
    model.compile("sgd", loss=["mse", "mse"])
    xa, xb = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(ValueError, match="x\\[1\\] must have shape \\(None, 2\\) for input 'b', got \\(4, 3\\)"):
        model.predict([xa, xa], verbose=0)
    with pytest.raises(ValueError, match="x must have one entry per model input \\['a', 'b'\\], got 3"):
        model.predict([xa, xb, xb], verbose=0)
    with pytest.raises(ValueError, match="x must be a list or dict with one array per model input"):
        model.predict(xa, verbose=0)
    with pytest.raises(ValueError, match="x\\[1\\] has 3 rows but x\\[0\\] has 4"):
        model.predict([xa, xb[:3]], verbose=0)
    with pytest.raises(ValueError, match="y as a dict must have the output names \\['o1', 'o2'\\] as keys; "
                                         "missing \\['o2'\\]"):
        model.fit([xa, xb], {"o1": np.zeros((4, 2))}, verbose=0)
    with pytest.raises(ValueError, match="y\\[1\\] \\(output 'o2'\\): y must have shape \\(4, 1\\)"):
        model.fit([xa, xb], [np.zeros((4, 2)), np.zeros((4, 3))], verbose=0)
    with pytest.raises(ValueError, match="loss must have one entry per model output"):
        model.compile("sgd", loss=["mse"])
    with pytest.raises(ValueError, match="loss_weights must be a list or dict with one number per output"):
        model.compile("sgd", loss="mse", loss_weights=2.0)
    with pytest.raises(TypeError, match="loss_weights\\[1\\] must be a finite number"):
        model.compile("sgd", loss="mse", loss_weights=[1.0, "x"])


def test_sample_weighted_step_of_a_two_output_graph_matches_torch():
    """Keras 3's sample_weight on every output of the graph, with loss_weights: Σ_k λ_k · Σ w·loss_k / n."""
    model = branching()
    model.compile(cnn.optimizers.SGD(0.1), ["sparse_categorical_crossentropy", "mse"], [1.0, 0.5])
    forward, params = branching_torch(model)
    opt = torch.optim.SGD(params, lr=0.1)
    rng = np.random.default_rng(5)
    x, y1, y2, w = rng.standard_normal((7, 5)), rng.integers(0, 3, 7), rng.standard_normal((7, 2)), rng.random(7)
    xt, wt = torch.tensor(x), torch.tensor(w)
    for _ in range(5):
        opt.zero_grad()
        logits, reg = forward(xt)
        ce = torch.nn.functional.cross_entropy(logits, torch.tensor(y1), reduction="none")
        se = ((reg - torch.tensor(y2)) ** 2).mean(dim=1)
        loss = (wt * ce).mean() + 0.5 * (wt * se).mean()
        loss.backward()
        opt.step()
        assert abs(model.train_on_batch(x, [y1, y2], sample_weight=w) - loss.item()) < 1e-10


def test_keras3_training_api_on_a_two_output_graph(tmp_path):
    model = branching("float64", seed=4)
    model.compile("adam", {"cls": "sparse_categorical_crossentropy", "reg": "mse"}, {"cls": 1.0, "reg": 0.25},
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    rng = np.random.default_rng(6)
    x, y1, y2, w = rng.standard_normal((20, 5)), rng.integers(0, 3, 20), rng.standard_normal((20, 2)), rng.random(20)
    history = model.fit(x, [y1, y2], batch_size=6, epochs=3, steps_per_epoch=2, sample_weight=w,
                        validation_data=(x, [y1, y2], w), validation_freq=2, verbose=0)
    keys = ["loss", "cls_accuracy", "reg_accuracy", "cls_accuracy_1", "reg_accuracy_1"]
    assert list(history.history) == keys + ["val_" + k for k in keys]
    assert len(history.history["loss"]) == 3 and len(history.history["val_loss"]) == 1  # validated after epoch 2
    logs = model.evaluate(x, [y1, y2], sample_weight=w, return_dict=True, verbose=0)
    assert list(logs) == keys
    out = model.predict(x, verbose=0)
    hits = out[0].argmax(axis=1) == y1
    np.testing.assert_allclose(logs["cls_accuracy"], hits.mean())
    np.testing.assert_allclose(logs["cls_accuracy_1"], (hits * w).sum() / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(logs["reg_accuracy"], (out[1].argmax(axis=1) == y2.argmax(axis=1)).mean())
    assert_same(model(x), out)  # model(x): the same outputs in one pass
    assert model.evaluate(x, [y1, y2], steps=1, verbose=0)[0] == model.evaluate(x[:32], [y1, y2], verbose=0)[0]
    model.save(tmp_path / "m.npz")
    copy = load_model(tmp_path / "m.npz")
    assert copy.loss_weights == [1.0, 0.25] and copy.evaluate(x, [y1, y2], sample_weight=w, return_dict=True,
                                                             verbose=0) == logs


def test_two_output_graph_refuses_what_keras_does_not_define():
    model = branching()
    with pytest.raises(ValueError, match="Metric object .* cannot watch the 2 outputs"):
        model.compile("sgd", ["sparse_categorical_crossentropy", "mse"], metrics=[cnn.metrics.MeanAbsoluteError()])
    model.compile("sgd", ["sparse_categorical_crossentropy", "mse"], ["accuracy"])  # cnn's earlier positional metrics
    assert model.metrics == ["accuracy"] and model.loss_weights is None
    x = np.zeros((4, 5))
    with pytest.raises(ValueError, match="class_weight is not supported for a model of 2 outputs"):
        model.fit(x, [np.zeros(4, int), np.zeros((4, 2))], class_weight={0: 2.0}, verbose=0)
    single = conv_graph()
    single.compile("sgd", "sparse_categorical_crossentropy", metrics=[cnn.metrics.SparseCategoricalAccuracy()])
    xs, ys = np.random.default_rng(0).standard_normal((6, 2, 6, 5)), np.array([0, 1, 2, 3, 0, 0])
    history = single.fit(xs, ys, class_weight={0: 0.5}, epochs=1, verbose=0)  # one output: as Sequential
    assert list(history.history) == ["loss", "sparse_categorical_accuracy"]
