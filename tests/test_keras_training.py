"""Keras 3's training API on cnn models: model(x), progress in evaluate/predict, compile's signature and
metrics, class_weight/sample_weight (checked against PyTorch), steps_per_epoch, validation_freq, building on
get_weights/summary, automatic names, cnn.load_model with metrics."""
import re
import sys

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import cnn
from cnn import metrics as M
from cnn.callbacks import Callback, EarlyStopping
from cnn.layers import Dense, Dropout
from conftest import rel_err


def classifier(seed=0, dtype="float64", out=3, act="softmax"):
    return cnn.Sequential([Dense(8, "tanh", input_dim=5), Dense(out, act)], seed=seed, dtype=dtype)


def data(rng, n=60, k=3):
    x = rng.standard_normal((n, 5))
    labels = rng.integers(0, k, n)
    return x, labels, np.eye(k)[labels]


def test_model_call_is_predict_in_one_pass(rng):
    x, _, _ = data(rng)
    model = cnn.Sequential([Dense(8, "relu", input_dim=5), Dropout(0.5), Dense(3, "softmax")], seed=1)
    out = model(x)
    assert out.shape == (60, 3) and out.dtype == np.float32
    assert np.array_equal(out, model.predict(x, batch_size=7, verbose=0))
    assert np.array_equal(model(x, training=False), out)
    assert not np.array_equal(model(x, training=True), out)  # dropout runs in training mode
    first = model(x[:2])
    model(x[2:4])
    assert np.array_equal(first, model.predict(x[:2], verbose=0))  # a copy, not the layer's reused buffer


def test_evaluate_and_predict_draw_progress(capsys, monkeypatch, rng):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # the text bar, as without tqdm
    x, labels, _ = data(rng, n=50)
    model = classifier()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.evaluate(x, labels, batch_size=10)  # verbose='auto' is 1
    final = capsys.readouterr().out.split("\r")[-1]
    assert re.fullmatch(r"5/5 ━{20} \d+s \d+(us|ms)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4} *\n", final)
    model.evaluate(x, labels, batch_size=10, verbose=2)
    assert re.fullmatch(r"5/5 - \d+s - \d+(us|ms)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}\n",
                        capsys.readouterr().out)
    model.predict(x, batch_size=20, verbose=1)
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+(us|ms)/step *\n", capsys.readouterr().out.split("\r")[-1])
    model.predict(x, verbose=0)
    model.evaluate(x, labels, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, labels, batch_size=25, epochs=1, verbose=2, validation_split=0.2)  # validation draws no bar
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("2/2 - ") and "val_accuracy" in lines[1]


def test_compile_takes_keras_3s_signature(rng):
    x, labels, _ = data(rng)
    model = classifier()
    model.compile("sgd", "sparse_categorical_crossentropy", None, ["accuracy"], ["accuracy"], False, 1, "auto", True)
    assert model.metrics == ["accuracy"] and model.weighted_metrics == ["accuracy"]
    model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy", M.AUC()])  # cnn's earlier order
    assert model.metrics[0] == "accuracy" and model.loss_weights is None
    with pytest.raises(TypeError, match="pass the metrics once"):
        model.compile("sgd", "mse", ["mae"], metrics=["mse"])
    with pytest.raises(ValueError, match="loss_weights must be one number"):
        model.compile("sgd", "mse", [1.0, 2.0])
    with pytest.raises(TypeError, match="metrics must be a list"):
        model.compile("sgd", "mse", metrics="mae")


def test_loss_weights_scale_loss_and_gradient(rng):
    x, labels, _ = data(rng)

    def run(loss_weights, lr):
        model = classifier()
        model.compile(cnn.optimizers.SGD(lr), "sparse_categorical_crossentropy", loss_weights)
        value = model.train_on_batch(x, labels)
        return value, model.get_weights()

    (half, w_half), (full, w_full) = run(0.5, 0.1), run(None, 0.05)
    assert half == pytest.approx(full / 2, rel=1e-14)
    assert all(np.array_equal(a, b) for a, b in zip(w_half, w_full))  # 0.5 is exact in floating point


def test_metrics_in_fit_and_evaluate_match_their_definitions(rng):
    x, labels, onehot = data(rng, n=90, k=4)
    model = classifier(out=4)
    model.compile("adam", "categorical_crossentropy",
                  metrics=["accuracy", "top_k_categorical_accuracy", M.top_k_categorical_accuracy,
                           M.TopKCategoricalAccuracy(k=2, name="top2"), "mae", "mse"])
    h = model.fit(x, onehot, batch_size=16, epochs=2, verbose=0, validation_split=0.2)
    assert list(h.history) == ["loss", "accuracy", "top_k_categorical_accuracy", "top_k_categorical_accuracy_1",
                               "top2", "mae", "mse", "val_loss", "val_accuracy", "val_top_k_categorical_accuracy",
                               "val_top_k_categorical_accuracy_1", "val_top2", "val_mae", "val_mse"]
    values = model.evaluate(x, onehot, batch_size=7, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(labels, p.argmax(1)), abs=1e-12)
    assert values["top2"] == pytest.approx(skm.top_k_accuracy_score(labels, p, k=2), abs=1e-12)
    assert values["mae"] == pytest.approx(skm.mean_absolute_error(onehot, p), abs=1e-12)
    assert values["mse"] == pytest.approx(skm.mean_squared_error(onehot, p), abs=1e-12)
    assert values["top_k_categorical_accuracy"] == 1.0  # k=5 > 4 classes
    listed = model.evaluate(x, onehot, verbose=0)
    assert listed == list(values.values()) and len(listed) == 7


def test_binary_metrics_on_a_fused_sigmoid(rng):
    x = rng.standard_normal((120, 5))
    y = (x[:, 0] + 0.5 * rng.standard_normal(120) > 0).astype(float)
    model = classifier(out=1, act="sigmoid")
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", M.Precision(), M.Recall(), M.AUC(), "auc"])
    model.fit(x, y, epochs=3, verbose=0)
    values = model.evaluate(x, y, batch_size=13, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0).ravel()
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(y, p > 0.5), abs=1e-12)
    assert values["precision"] == pytest.approx(skm.precision_score(y, p > 0.5), abs=1e-12)
    assert values["recall"] == pytest.approx(skm.recall_score(y, p > 0.5), abs=1e-12)
    assert values["auc"] == pytest.approx(M.AUC()(y, p), abs=1e-12) == values["auc_1"]
    assert abs(values["auc"] - skm.roc_auc_score(y, p)) < 5e-3


def torch_weighted_step(model, x, labels, w, lr):
    """One SGD step of sum(w·CE)/n on the same two-layer network in float64 PyTorch; returns the new weights."""
    params = [torch.tensor(a, requires_grad=True) for a in model.get_weights()]
    h = torch.tanh(torch.tensor(x) @ params[0] + params[1])
    loss = (torch.tensor(w) * torch.nn.functional.cross_entropy(h @ params[2] + params[3], torch.tensor(labels),
                                                                reduction="none")).mean()
    loss.backward()
    return loss.item(), [(p - lr * p.grad).detach().numpy() for p in params]


@pytest.mark.parametrize("n", [1, 17])
def test_sample_weight_step_matches_pytorch(rng, n):
    x, labels, _ = data(rng, n=n)
    w = rng.random(n) * 3
    model = classifier()
    model.compile(cnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    ref_loss, ref_weights = torch_weighted_step(model, x, labels, w, 0.1)
    assert rel_err(model.train_on_batch(x, labels, sample_weight=w), ref_loss) < 1e-12
    for got, ref in zip(model.get_weights(), ref_weights):
        assert rel_err(got, ref) < 1e-12


def test_class_weight_is_sample_weight_by_class(rng):
    x, labels, onehot = data(rng)
    class_weight = {0: 0.5, 2: 3.0}  # class 1 unlisted: weight 1

    def fit(**kwargs):
        model = classifier()
        model.compile("adam", "categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
        h = model.fit(x, onehot, batch_size=8, epochs=2, verbose=0, **kwargs)
        return h.history, model.get_weights()

    by_class, by_sample = fit(class_weight=class_weight), fit(sample_weight=np.array([0.5, 1, 3])[labels])
    assert by_class[0] == by_sample[0]
    assert all(np.array_equal(a, b) for a, b in zip(by_class[1], by_sample[1]))
    with pytest.raises(ValueError, match="not both"):
        model = classifier()
        model.compile("adam", "categorical_crossentropy")
        model.fit(x, onehot, class_weight=class_weight, sample_weight=np.ones(60))


def test_weighted_evaluate(rng):
    x, labels, _ = data(rng)
    w = rng.random(60)
    model = classifier()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    values = model.evaluate(x, labels, batch_size=11, sample_weight=w, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    per_sample = -np.log(p[np.arange(60), labels])
    assert values["loss"] == pytest.approx(np.mean(w * per_sample), rel=1e-12)
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(labels, p.argmax(1)), abs=1e-12)  # unweighted
    assert values["accuracy_1"] == pytest.approx(skm.accuracy_score(labels, p.argmax(1), sample_weight=w), abs=1e-12)
    for bad, match in ((np.ones(59), r"sample_weight must have shape \(60,\)"), (-np.ones(60), ">= 0")):
        with pytest.raises(ValueError, match=match):
            model.evaluate(x, labels, sample_weight=bad, verbose=0)


def test_validation_split_and_data_carry_weights(rng):
    x, labels, _ = data(rng)
    w = rng.random(60) + 0.5
    model = classifier()
    model.compile("sgd", "sparse_categorical_crossentropy")
    h = model.fit(x, labels, epochs=1, verbose=0, sample_weight=w, validation_split=0.25)
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(x[45:], labels[45:], sample_weight=w[45:],
                                                                     verbose=0))
    h = model.fit(x, labels, epochs=1, verbose=0, validation_data=(x[:9], labels[:9], w[:9]))
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(x[:9], labels[:9], sample_weight=w[:9],
                                                                     verbose=0))


class Batches(Callback):
    def __init__(self):
        super().__init__()
        self.count = []

    def on_epoch_begin(self, epoch, logs=None):
        self.count.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.count[-1] += 1


def test_steps_per_epoch_continues_through_the_data(rng):
    """4 batches of 10 rows, 3 steps an epoch, 4 epochs: batches 0 1 2 | 3 0 1 | 2 3 0 | 1 2 3, as one stream."""
    x, labels, _ = data(rng, n=40)
    model, manual = classifier(seed=5), classifier(seed=5)
    for m in (model, manual):
        m.compile(cnn.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    seen = Batches()
    h = model.fit(x, labels, batch_size=10, epochs=4, steps_per_epoch=3, shuffle=False, verbose=0, callbacks=[seen])
    for b in [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]:
        manual.train_on_batch(x[10 * b:10 * b + 10], labels[10 * b:10 * b + 10])
    assert seen.count == [3, 3, 3, 3] and h.params["steps"] == 3
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), manual.get_weights()))
    seen = Batches()
    model.fit(x, labels, batch_size=10, epochs=2, steps_per_epoch=6, verbose=0, callbacks=[seen])  # wraps, shuffled
    assert seen.count == [6, 6]


def test_validation_freq(rng):
    x, labels, _ = data(rng)
    model = classifier()
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert len(model.fit(x, labels, epochs=5, verbose=0, validation_split=0.2,
                         validation_freq=2).history["val_loss"]) == 2  # epochs 2 and 4
    assert len(model.fit(x, labels, epochs=5, verbose=0, validation_split=0.2,
                         validation_freq=[1, 5]).history["val_loss"]) == 2
    with pytest.raises(TypeError, match="validation_freq"):
        model.fit(x, labels, verbose=0, validation_freq="often")
    with pytest.raises(ValueError, match="validation_freq"):
        model.fit(x, labels, verbose=0, validation_freq=0)


def test_early_stopping_knows_each_metrics_direction(rng):
    x, _, onehot = data(rng)
    model = classifier()
    model.compile("adam", "categorical_crossentropy", metrics=[M.AUC(name="auc"), "mae"])
    assert model.fit(x, onehot, epochs=2, verbose=0, validation_split=0.2,
                     callbacks=[EarlyStopping("val_auc"), EarlyStopping("val_mae")]).history["val_auc"]
    assert M.AUC().direction == "up" and M.MeanAbsoluteError().direction == "down"


def test_sized_model_builds_for_get_weights_and_summary(capsys):
    model = cnn.Sequential([Dense(4, input_dim=3), Dense(2)])
    weights = model.get_weights()
    assert model.built and [w.shape for w in weights] == [(3, 4), (4,), (4, 2), (2,)]
    sized = cnn.Sequential([Dense(4, input_dim=3)])
    sized.summary()
    assert sized.built and "16" in capsys.readouterr().out
    assert cnn.Sequential([Dense(4)]).get_weights() == []  # the input size is unknown: nothing to build


def test_models_and_layers_are_numbered_as_in_keras():
    a, b = cnn.Sequential(), cnn.Sequential([Dense(2), Dense(2)])
    assert (a.name, b.name, [layer.name for layer in b.layers]) == ("sequential", "sequential_1",
                                                                    ["dense", "dense_1"])
    cnn.utils.clear_session()
    assert cnn.Sequential().name == "sequential"


def test_top_level_load_model_restores_metrics(tmp_path, rng):
    x, _, onehot = data(rng)
    model = classifier()
    model.compile(cnn.optimizers.SGD(lr=0.2), "categorical_crossentropy", loss_weights=2.0,
                  metrics=["accuracy", M.AUC(num_thresholds=50, curve="PR"), M.top_k_categorical_accuracy],
                  weighted_metrics=[M.Precision(thresholds=[0.3, 0.6], class_id=1)])
    model.fit(x, onehot, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = cnn.load_model(tmp_path / "m.npz")
    assert loaded._loss_weight == 2.0 and loaded.optimizer.learning_rate == 0.2
    auc = loaded.metrics[1]
    assert isinstance(auc, M.AUC) and (auc.num_thresholds, auc.curve) == (50, "PR")
    assert loaded.metrics[2] == "top_k_categorical_accuracy"
    assert loaded.weighted_metrics[0].thresholds == [0.3, 0.6] and loaded.weighted_metrics[0].class_id == 1
    w = rng.random(60)
    assert loaded.evaluate(x, onehot, sample_weight=w, verbose=0) == model.evaluate(x, onehot, sample_weight=w,
                                                                                    verbose=0)


def test_class_weight_on_one_sigmoid_output_uses_the_rounded_target(rng):
    x = rng.standard_normal((40, 5))
    y = (x[:, 0] > 0).astype(float)

    def fit(**kwargs):
        model = classifier(out=1, act="sigmoid")
        model.compile("adam", "binary_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, **kwargs)
        return model.get_weights()

    for a, b in zip(fit(class_weight={1: 3.0}), fit(sample_weight=np.where(y == 1, 3.0, 1.0))):
        assert np.array_equal(a, b)
