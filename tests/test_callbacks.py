"""Callbacks: hook order, EarlyStopping's Keras 3 semantics on scripted metric sequences, ModelCheckpoint,
LearningRateScheduler, TerminateOnNaN and GradientNorms (checked against PyTorch)."""
import numpy as np
import pytest
import torch

import cnn
from cnn.callbacks import (Callback, EarlyStopping, GradientNorms, LearningRateScheduler, ModelCheckpoint,
                           TerminateOnNaN)
from cnn.layers import Dense, Input
from keras_helpers import data, rel_err, small_model


class FakeModel:
    """Stands in for a model: its 'weights' are the number of the epoch that last ended."""

    def __init__(self):
        self.stop_training = False
        self.epoch = None
        self.restored = None

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.restored = weights[0]


def scripted(values, epochs=None, monitor="val_loss", **kwargs):
    """Drive EarlyStopping as fit does over a scripted metric; returns (epochs run, model, callback)."""
    cb, model = EarlyStopping(monitor=monitor, **kwargs), FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    run = 0
    for epoch, value in enumerate(values[:epochs]):
        model.epoch, run = epoch, run + 1
        cb.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            break
    cb.on_train_end()
    return run, model, cb


def test_patience_counts_epochs_without_improvement():
    assert scripted([1.0, 2.0, 0.5])[0] == 2  # patience 0 stops at the first non-improving epoch
    assert scripted([5, 4, 4, 4, 3], patience=2)[0] == 4  # best at epoch 1, stops at 1 + 2
    assert scripted([5, 4, 4, 3, 3, 3, 3], patience=2)[0] == 6
    assert scripted([3, 2, 1, 0], patience=0)[0] == 4  # improving every epoch never stops
    run, model, cb = scripted([1.0] * 10, patience=3)
    assert run == 4 and cb.stopped_epoch == 3 and model.stop_training  # Keras' docstring example


def test_min_delta_is_the_smallest_improvement():
    assert scripted([1.0, 0.95, 0.9], patience=1, min_delta=0.1)[0] == 2
    assert scripted([1.0, 0.85, 0.7, 0.69], patience=1, min_delta=0.1)[0] == 4
    assert scripted([1.0, 0.85, 0.7, 0.69], patience=1, min_delta=-0.1)[0] == 4  # |min_delta| is used


def test_mode_auto_min_max():
    acc = [0.5, 0.6, 0.55, 0.58]
    assert scripted(acc, monitor="val_accuracy", patience=1)[0] == 3  # auto: accuracy is maximised
    assert scripted(acc, monitor="val_accuracy", patience=1, mode="max")[0] == 3
    assert scripted(acc, monitor="val_accuracy", patience=1, mode="min")[0] == 2
    assert scripted([1, 2, 3], monitor="score", mode="max")[0] == 3
    with pytest.raises(ValueError, match="mode='max'"):
        scripted([1, 2], monitor="score")
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="down")


def test_baseline_must_be_beaten_to_reset_the_wait():
    assert scripted([1.0, 1.1, 1.2], patience=2)[0] == 3
    assert scripted([1.0, 1.1, 1.2], patience=2, baseline=0.5)[0] == 2  # epoch 0 improved but not on 0.5
    assert scripted([1.0, 0.9, 0.8, 0.7, 0.6], patience=1, baseline=0.5)[0] == 5  # improving epochs never stop
    assert scripted([0.4, 0.45, 0.45, 0.45], patience=2, baseline=0.5)[0] == 3


def test_restore_best_weights_in_on_train_end():
    run, model, cb = scripted([3, 1, 2, 2], patience=2, restore_best_weights=True)
    assert run == 4 and model.restored == 1 and cb.best_epoch == 1
    run, model, _ = scripted([3, 1, 2], patience=5, restore_best_weights=True)  # Keras 3: even without a stop
    assert run == 3 and model.restored == 1
    assert scripted([3, 1, 2, 2], patience=2)[1].restored is None
    # nothing beats the baseline: the best epoch seen is restored
    # (improving epochs return before the patience check, so the stop comes at the first worse epoch)
    run, model, _ = scripted([0.9, 0.8, 0.85], patience=2, baseline=0.1, restore_best_weights=True)
    assert run == 3 and model.restored == 1


def test_start_from_epoch_and_missing_metric():
    assert scripted([1, 2, 3, 4, 5], start_from_epoch=3)[0] == 5
    assert scripted([1, 2, 3, 0.5, 0.7, 0.8], start_from_epoch=2, patience=1)[0] == 5
    cb, model = EarlyStopping(monitor="val_auc", mode="max"), FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    with pytest.warns(UserWarning, match="`val_auc` which is not available. Available metrics are: loss,val_loss"):
        cb.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert cb.wait == 0 and not model.stop_training


def test_messages_when_verbose(capsys):
    scripted([3, 1, 2, 2], patience=2, restore_best_weights=True, verbose=1)
    assert capsys.readouterr().out == ("Epoch 4: early stopping\n"
                                       "Restoring model weights from the end of the best epoch: 2.\n")
    scripted([3, 1, 2, 2], patience=2)
    assert capsys.readouterr().out == ""


def test_early_stopping_in_fit_restores_real_weights():
    x, y = data()
    model = small_model(optimizer=cnn.optimizers.SGD(0.0))  # lr 0: the loss never moves
    es = EarlyStopping(monitor="loss", patience=3)
    h = model.fit(x, y, epochs=10, verbose=0, callbacks=[es], shuffle=False)
    assert len(h.history["loss"]) == 4 and model.stop_training
    model = small_model(optimizer=cnn.optimizers.SGD(0.5))
    snapshots = []

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=8, validation_split=0.3, verbose=0, callbacks=[Snapshot(), es])
    best = int(np.argmin(h.history["val_loss"]))
    assert es.best_epoch == best
    for a, b in zip(model.get_weights(), snapshots[best]):
        np.testing.assert_array_equal(a, b)


def test_hook_order_in_fit_evaluate_predict():
    calls = []

    class Recorder(Callback):
        def __getattribute__(self, name):
            if name.startswith("on_"):
                return lambda *a, **k: calls.append((name,) + tuple(v for v in a[:1] if isinstance(v, int)))
            return super().__getattribute__(name)

    x, y = data(n=20)
    model = small_model()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_split=0.25, callbacks=[Recorder()])
    assert calls == [("on_train_begin",), ("on_epoch_begin", 0), ("on_train_batch_begin", 0),
                     ("on_train_batch_end", 0), ("on_train_batch_begin", 1), ("on_train_batch_end", 1),
                     ("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0), ("on_test_end",),
                     ("on_epoch_end", 0), ("on_train_end",)]
    calls.clear()
    model.evaluate(x, y, batch_size=20, verbose=0, callbacks=[Recorder()])
    assert calls == [("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0), ("on_test_end",)]
    calls.clear()
    model.predict(x, batch_size=20, callbacks=[Recorder()])
    assert calls == [("on_predict_begin",), ("on_predict_batch_begin", 0), ("on_predict_batch_end", 0),
                     ("on_predict_end",)]
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, verbose=0, callbacks=[print])


def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    x, y = data()
    model = small_model()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.npz"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-01.npz", "m-02.npz", "m-03.npz"]
    snapshots = []

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    model = small_model(optimizer=cnn.optimizers.SGD(0.3))
    path = tmp_path / "best.npz"
    h = model.fit(x, y, epochs=4, verbose=0, callbacks=[Snapshot(), ModelCheckpoint(path, monitor="loss",
                                                                                     save_best_only=True,
                                                                                     mode="max")])
    assert np.all(np.diff(h.history["loss"]) < 0)  # loss falls, so in 'max' mode only epoch 1 is best
    for a, b in zip(cnn.models.load_model(path).get_weights(), snapshots[0]):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_scheduler_sets_and_logs_the_rate(capsys):
    x, y = data()
    model = small_model(optimizer=cnn.optimizers.SGD(0.4))
    seen = []
    sched = LearningRateScheduler(lambda epoch, lr: seen.append((epoch, lr)) or lr / 2, verbose=1)
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert seen == [(0, 0.4), (1, 0.2), (2, 0.1)]
    assert h.history["learning_rate"] == [0.2, 0.1, 0.05] and model.optimizer.learning_rate == 0.05
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.2." in capsys.readouterr().out
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: 0.0)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError):
        LearningRateScheduler(0.1)


def test_terminate_on_nan_stops_instead_of_raising(capsys):
    x = np.full((20, 3), 1e200)
    t = np.zeros((20, 1))
    model = cnn.Sequential([Input((3,)), Dense(1)], seed=0, dtype="float64")
    model.compile(cnn.optimizers.SGD(0.1), "mse")
    model.build()
    before = model.get_weights()
    h = model.fit(x, t, batch_size=5, epochs=3, verbose=0, callbacks=[TerminateOnNaN()])
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    assert len(h.history["loss"]) == 1 and not np.isfinite(h.history["loss"][0])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the non-finite batch was not applied
    with pytest.raises(FloatingPointError, match="training loss"):
        model.fit(x, t, batch_size=5, epochs=3, verbose=0)


def test_gradient_norms_match_pytorch():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    model = cnn.Sequential([Input((4,)), Dense(6, activation="tanh"), Dense(3, activation="softmax")], seed=1,
                           dtype="float64")
    model.compile(cnn.optimizers.SGD(0.2), "sparse_categorical_crossentropy")
    model.build()
    net = torch.nn.Sequential(torch.nn.Linear(4, 6, dtype=torch.float64), torch.nn.Tanh(),
                              torch.nn.Linear(6, 3, dtype=torch.float64))
    with torch.no_grad():
        for lin, layer in zip((net[0], net[2]), model.layers):
            lin.weight.copy_(torch.from_numpy(layer.get_weights()[0].T))
            lin.bias.copy_(torch.from_numpy(layer.get_weights()[1]))
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    expected = {"dense": [], "dense_1": []}
    for _ in range(2):
        sums = np.zeros(2)
        for s in range(0, 30, 8):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(torch.from_numpy(x[s:s + 8])),
                                              torch.from_numpy(y[s:s + 8])).backward()
            sums += [net[0].weight.grad.norm().item(), net[2].weight.grad.norm().item()]
            opt.step()
        expected["dense"].append(sums[0] / 4)
        expected["dense_1"].append(sums[1] / 4)
    h = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[GradientNorms()])
    assert rel_err(h.history["grad_norm/dense"], expected["dense"]) < 1e-10
    assert rel_err(h.history["grad_norm/dense_1"], expected["dense_1"]) < 1e-10


def test_gradient_norms_show_vanishing_gradients_in_a_deep_sigmoid_net():
    x, y = data(n=64, d=8)
    model = cnn.Sequential([Input((8,))] + [Dense(16, activation="sigmoid") for _ in range(6)]
                           + [Dense(3, activation="softmax")], seed=0)
    model.compile(cnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    h = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[GradientNorms()])
    norms = [h.history[f"grad_norm/{layer.name}"][-1] for layer in model.layers]
    assert len(norms) == 7 and norms[0] < norms[3] / 10 < norms[6] / 100  # each sigmoid divides by >= 4
