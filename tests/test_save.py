"""save/load and pickle: bit-exact round trips (weights, predictions, continued training), atomic writes,
clear errors for truncated or foreign files, and generic get_config for any Layer subclass."""
import os
import pickle

import numpy as np
import pytest

import cnn
from cnn.layers import Dense, Dropout, Input, Layer
from cnn.models import load_model
from keras_helpers import data


def trained(optimizer="adam", dropout=0.25, dtype="float32"):
    x, y = data(n=48, dtype=dtype)
    model = cnn.Sequential([Input((5,)), Dense(8, activation="relu", kernel_regularizer=cnn.regularizers.l2(1e-3)),
                            Dropout(dropout), Dense(3, activation="softmax", kernel_initializer="he_normal")],
                           seed=5, dtype=dtype)
    model.compile(optimizer=cnn.optimizers.get(optimizer), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=10, epochs=2, verbose=0)
    return model, x, y


def assert_same_model(a, b):
    assert [type(l) for l in a.layers] == [type(l) for l in b.layers]
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert wa.dtype == wb.dtype
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("via", ["file", "pickle"])
def test_round_trip_is_bit_exact_and_training_continues_identically(tmp_path, optimizer, via):
    if optimizer == "sgd":
        optimizer = cnn.optimizers.SGD(0.05, momentum=0.9, nesterov=True)
    model, x, y = trained(optimizer)
    if via == "file":
        model.save(tmp_path / "model.npz")
        copy = load_model(tmp_path / "model.npz")
    else:
        copy = pickle.loads(pickle.dumps(model))
    assert_same_model(model, copy)
    np.testing.assert_array_equal(model.predict(x), copy.predict(x))
    assert copy.optimizer.iterations == model.optimizer.iterations
    assert repr(copy.optimizer) == repr(model.optimizer) and copy.metrics == model.metrics
    # shuffling and dropout masks come from the restored generator: the continuation is identical
    ha = model.fit(x, y, batch_size=10, epochs=2, verbose=0)
    hb = copy.fit(x, y, batch_size=10, epochs=2, verbose=0)
    assert ha.history == hb.history
    assert_same_model(model, copy)
    assert all(l.model is copy for l in copy.layers)


def test_float64_and_unbuilt_and_uncompiled_models(tmp_path):
    model, x, _ = trained(dtype="float64")
    model.save(tmp_path / "a.npz")
    np.testing.assert_array_equal(load_model(tmp_path / "a.npz").predict(x), model.predict(x))
    bare = cnn.Sequential([Dense(4, input_dim=3), Dense(2, activation="sigmoid")], name="bare")
    bare.save(tmp_path / "b.npz")
    loaded = load_model(tmp_path / "b.npz")
    assert loaded.name == "bare" and not loaded.built and loaded.loss is None
    assert loaded.layers[0].get_config() == bare.layers[0].get_config()
    bare.build()
    bare.save(tmp_path / "c.npz")
    assert_same_model(bare, load_model(tmp_path / "c.npz"))


def test_get_config_is_generic_for_any_layer():
    class Scale(Layer):
        def __init__(self, factor, offset=(0.0, 1.0), name=None):
            super().__init__(name=name)
            self.factor = factor

        def forward(self, x, training=False, logits=False):
            return x * self.factor

    class Shift(Scale):
        def __init__(self, by, **kwargs):
            super().__init__(factor=1.0, **kwargs)
            self.by = by

    layer = Scale(2.5, name="s")
    assert layer.get_config() == {"factor": 2.5, "offset": (0.0, 1.0), "name": "s"}
    assert Shift(3, offset=(1, 2)).get_config() == {"by": 3, "offset": (1, 2), "name": None}
    assert Scale.from_config(layer.get_config()).factor == 2.5
    dense = Dense(4, activation=cnn.activations.leaky_relu(0.1), kernel_regularizer=cnn.regularizers.l2(0.02))
    config = dense.get_config()
    assert config["units"] == 4 and config["kernel_initializer"] == "glorot_uniform" and config["name"] is None
    assert Dropout(0.3, seed=1).get_config() == {"rate": 0.3, "seed": 1, "name": None, "input_shape": None}


def test_custom_layer_survives_save_and_load(tmp_path):
    model = cnn.Sequential([Input((3,)), Dense(4, activation=cnn.activations.leaky_relu(0.1),
                                                kernel_regularizer=cnn.regularizers.l2(0.02)),
                            Dense(2)], seed=0)
    model.build()
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.layers[0].activation.alpha == 0.1
    assert loaded.layers[0].kernel_regularizer.l2 == 0.02
    x = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_unsavable_argument_is_named(tmp_path):
    model = cnn.Sequential([Input((3,)), Dense(2, kernel_initializer=lambda shape, rng, dtype: np.ones(shape))])
    model.build()
    with pytest.raises(ValueError, match="cannot save dense.kernel_initializer"):
        model.save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []  # no temporary file is left behind


def test_save_is_atomic(tmp_path, monkeypatch):
    model, x, _ = trained()
    path = tmp_path / "m.npz"
    model.save(path)
    good = path.read_bytes()
    real_savez = np.savez

    def crash(f, **arrays):
        real_savez(f, **arrays)
        f.truncate(100)  # half-written
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["m.npz"]
    np.testing.assert_array_equal(load_model(path).predict(x), model.predict(x))


def test_truncated_and_foreign_files_raise_value_error(tmp_path):
    model, _, _ = trained()
    model.save(tmp_path / "m.npz")
    blob = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(blob[:len(blob) // 2])
    (tmp_path / "text.npz").write_text("hello")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    np.savez(tmp_path / "other.npz", config=np.array('{"format": "something else"}'))
    for name, match in [("cut", "not a cnn model file"), ("text", "not a cnn model file"),
                        ("plain", "not a readable cnn model file"), ("other", "does not describe")]:
        with pytest.raises(ValueError, match=match):
            load_model(tmp_path / f"{name}.npz")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")
