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
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
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
    assert all(layer.model is copy for layer in copy.layers)


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


# ---- crafted files: every field is checked at load, and the error names it ---------------------------------------


def payload(model):
    """(config, arrays) of a saved `model` as load_model reads them, to be edited into a crafted file."""
    import json
    config, arrays = model._payload()
    return json.loads(json.dumps(config)), {k: v.copy() for k, v in arrays.items()}


def write(path, config, arrays):
    import json
    np.savez(path, config=np.array(json.dumps(config)), **arrays)
    return path


def set_path(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value


CRAFTED = [  # (where in the config, the value put there, the field the error must name)
    (("name",), 5, "config.name"),
    (("seed",), -3, "seed"),
    (("seed",), "0", "seed"),
    (("dtype",), 5, "config.dtype"),
    (("built",), "yes", "config.built"),
    (("version",), True, "version"),
    (("input_shape",), [5, 0], "config.input_shape"),
    (("input_shape",), [2**31], "config.input_shape"),
    (("input_shape",), [6], "config.input_shape is \\[6\\] but the layers declare \\(5,\\)"),
    (("input_shape",), None, "config.input_shape must be given for a built model"),
    (("surprise",), 1, "unknown \\['surprise'\\]"),
    (("layer_rngs",), KeyError, "missing \\['layer_rngs'\\]"),
    (("layers",), {"a": 1}, "config.layers"),
    (("layers", 0, "class_name"), "Popen", "config.layers\\[0\\].class_name"),
    (("layers", 0, "config", "units"), 2**31, "config.layers\\[0\\].config: units"),
    (("layers", 0, "config", "units"), 9, "the array 'params' must have shape"),
    (("layers", 0, "config", "bogus"), 1, "config.layers\\[0\\].config"),
    (("layers", 0, "config", "name"), 7, "config.layers\\[0\\].config: name"),
    (("layers", 0, "config", "activation"), {"__activation__": "relu", "alpha": "x", "beta": 1.0},
     "config.layers\\[0\\].config.activation.alpha"),
    (("layers", 0, "config", "activation"), {"__activation__": "relu", "alpha": 0.0, "beta": 1.0, "x": 1},
     "config.layers\\[0\\].config.activation"),
    (("layers", 0, "config", "kernel_regularizer"), {"__regularizer__": "l1", "l2": 0.1},
     "config.layers\\[0\\].config.kernel_regularizer.__regularizer__"),
    (("layers", 1), {"class_name": "Dropout", "config": {"rate": float("nan"), "name": "d"}},
     "config.layers\\[1\\].config: rate"),
    (("rng", "state", "state"), -1, "config.rng.state.state"),
    (("rng", "bit_generator"), "MT19937", "config.rng.bit_generator"),
    (("rng", "has_uint32"), 7, "config.rng.has_uint32"),
    (("layer_rngs",), {"dense": None}, "config.layer_rngs names 'dense'"),
    (("compile", "iterations"), -1, "config.compile.iterations"),
    (("compile", "iterations"), "3", "config.compile.iterations"),
    (("compile", "metrics"), 5, "config.compile.metrics"),
    (("compile", "optimizer_state"), ["__class__"], "config.compile.optimizer_state"),
    (("compile", "optimizer_state"), ["step"], "config.compile.optimizer_state"),
    (("compile", "optimizer_state"), ["_m"], "config.compile.optimizer_state"),
    (("compile", "optimizer_state"), ["_m", "_m"], "config.compile.optimizer_state"),
    (("compile", "optimizer_state"), [["_m"], "_v"], "config.compile.optimizer_state"),
    (("compile", "optimizer", "class_name"), "object", "config.compile.optimizer.class_name"),
    (("compile", "optimizer", "config", "learning_rate"), -1.0, "config.compile.optimizer.config: learning_rate"),
    (("compile", "optimizer", "config", "variant"), ["keras"], "config.compile.optimizer.config: variant"),
    (("compile", "optimizer", "config", "epsilon"), "1e-7", "config.compile.optimizer.config"),
    (("compile", "loss", "config", "from_logits"), "no", "config.compile.loss.config"),
    (("compile", "loss", "class_name"), "Loss", "config.compile.loss"),
]


@pytest.mark.parametrize("path, value, field", CRAFTED, ids=[f"{'.'.join(map(str, c[0]))}={c[1]!r}" for c in CRAFTED])
def test_crafted_config_fails_at_load_naming_the_field(tmp_path, path, value, field):
    model, _, _ = trained()
    config, arrays = payload(model)
    set_path(config, path, value)
    with pytest.raises(ValueError, match=field):
        load_model(write(tmp_path / "m.npz", config, arrays))
    with pytest.raises(ValueError, match=field):  # unpickling reads the same fields
        cnn.Sequential.__new__(cnn.Sequential).__setstate__({"config": config, "arrays": arrays})


@pytest.mark.parametrize("name, make, field", [
    ("optimizer_m", lambda a: a["optimizer_m"].astype(">f4"), "'optimizer_m' must have shape .* and dtype float32"),
    ("optimizer_v", lambda a: a["optimizer_v"][:-1], "'optimizer_v' must have shape"),
    ("optimizer_v", lambda a: a["optimizer_v"].astype(np.float64), "'optimizer_v' must have shape"),
    ("params", lambda a: a["params"].astype(">f4"), "'params' must have shape"),
    ("params", lambda a: a["params"].reshape(1, -1), "'params' must have shape"),
    ("params", lambda a: np.where(np.arange(a["params"].size) == 3, np.nan, a["params"]).astype(np.float32),
     "'params' holds NaN"),
    ("optimizer_step", lambda a: np.zeros(3, np.float32), "unknown arrays \\['optimizer_step'\\]"),
    ("extra", lambda a: np.zeros(3), "unknown arrays \\['extra'\\]"),
])
def test_crafted_arrays_fail_at_load_naming_the_array(tmp_path, name, make, field):
    model, _, _ = trained()
    config, arrays = payload(model)
    arrays[name] = make(arrays)
    with pytest.raises(ValueError, match=field):
        load_model(write(tmp_path / "m.npz", config, arrays))


def test_optimizer_state_of_an_unbuilt_model_and_a_missing_array_are_refused(tmp_path):
    model, _, _ = trained()
    config, arrays = payload(model)
    del arrays["optimizer_v"]
    with pytest.raises(ValueError, match="the array 'optimizer_v' is missing"):
        load_model(write(tmp_path / "a.npz", config, arrays))
    config, arrays = payload(model)
    config["built"], config["input_shape"] = False, None
    del arrays["params"]
    with pytest.raises(ValueError, match="optimizer_state is not empty but the model is not built"):
        load_model(write(tmp_path / "b.npz", config, arrays))


def test_unpickling_a_state_that_is_not_a_model_state_is_refused():
    for state in (None, {"config": {}}, {"config": {}, "arrays": {}, "x": 1}):
        with pytest.raises(ValueError, match="config|state"):
            cnn.Sequential.__new__(cnn.Sequential).__setstate__(state)
