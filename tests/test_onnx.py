"""cnn.onnx.export: the exported graph, run in onnxruntime, gives model.predict's outputs (1e-5) for an MLP,
LeNet-5 and a network using every supported layer; what has no ONNX form is refused by name."""
import sys

import numpy as np
import pytest

import cnn
from cnn.applications import lenet5, lenet5_inputs
from cnn.layers import (Activation, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, Layer, MaxPooling2D,
                        ZeroPadding2D)
from user_env import require_onnx


@pytest.fixture(autouse=True)
def onnx_installed():
    require_onnx()


def run_onnx(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"] and [o.name for o in session.get_outputs()] == ["output"]
    return session.run(None, {"input": x})[0]


def check_round_trip(model, x, tmp_path, tol=1e-5):
    path = tmp_path / "model.onnx"
    cnn.onnx.export(model, path)
    got, ref = run_onnx(path, x), model.predict(x, verbose=0)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert np.abs(got - ref).max() <= tol * max(1.0, np.abs(ref).max())
    return got


def mlp(dtype="float32"):
    return cnn.Sequential([Dense(64, "relu", input_dim=20), Dropout(0.3), Dense(33, "tanh"), Dense(17, "sigmoid"),
                           Dense(16, "leaky_relu"), Dense(5, "softmax")], seed=1, dtype=dtype)


@pytest.mark.parametrize("batch", [1, 7])
def test_mlp_round_trip(tmp_path, rng, batch):
    model = mlp()
    model.compile("adam", "categorical_crossentropy")
    x = rng.standard_normal((64, 20)).astype(np.float32)
    model.fit(x, np.eye(5)[rng.integers(0, 5, 64)], epochs=2, verbose=0)  # trained: not the initial weights
    check_round_trip(model, x[:batch], tmp_path)


def test_mlp_float64_round_trip(tmp_path, rng):
    """DOUBLE tensors throughout; onnxruntime's double Tanh and Sigmoid are not libm's (measured 2.6e-10 apart)."""
    model = mlp("float64")
    check_round_trip(model, rng.standard_normal((9, 20)), tmp_path, tol=1e-9)


def test_lenet5_round_trip(tmp_path, rng):
    model = lenet5(seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = lenet5_inputs(rng.integers(0, 256, (40, 28, 28), dtype=np.uint8))
    model.fit(x, rng.integers(0, 10, 40), batch_size=8, verbose=0)
    out = check_round_trip(model, x[:11], tmp_path)
    assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_every_supported_layer_round_trips(tmp_path, rng):
    """padding, strides, dilation, 'same' pooling (count_include_pad=0), integer pooling padding (=1), scaled tanh."""
    model = cnn.Sequential([
        ZeroPadding2D(((1, 0), (2, 1)), input_shape=(3, 9, 11)),
        Conv2D(4, 3, strides=2, padding=1, activation="sigmoid"),
        MaxPooling2D(2, padding="same"),
        Conv2D(6, (2, 3), dilation_rate=2, padding="same", use_bias=False),
        Activation(cnn.activations.scaled_tanh(1.5, 0.7)),
        AveragePooling2D(2, strides=1, padding=1),
        AveragePooling2D(2, padding="same"),
        Conv2D(4, 1, groups=2, activation="relu"),
        Flatten(),
        Dense(7),
        Dense(3, "log_softmax")], seed=2)
    check_round_trip(model, rng.standard_normal((4, 3, 9, 11)).astype(np.float32), tmp_path)


def test_dense_on_rank_3_input(tmp_path, rng):
    model = cnn.Sequential([Dense(4, "relu", input_shape=(3, 5)), Dense(2, "softmax")], seed=0)
    check_round_trip(model, rng.standard_normal((2, 3, 5)).astype(np.float32), tmp_path)


def test_unbuilt_model_with_known_input_builds(tmp_path):
    model = cnn.Sequential([Dense(3, input_dim=4)])
    cnn.onnx.export(model, tmp_path / "m.onnx")
    assert model.built
    with pytest.raises(ValueError, match="input_shape"):
        cnn.onnx.export(cnn.Sequential([Dense(3)]), tmp_path / "n.onnx")


def test_refuses_what_has_no_onnx_form(tmp_path):
    class Double(Layer):
        def forward(self, x, training=False):
            return 2 * x

    with pytest.raises(ValueError, match=r"layer 'double' \(Double\) has no ONNX form"):
        cnn.onnx.export(cnn.Sequential([Dense(3, input_dim=2), Double()]), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="Sequential"):
        cnn.onnx.export("model", tmp_path / "m.onnx")


def test_missing_onnx_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "cnn\[onnx\]"'):
        cnn.onnx.export(cnn.Sequential([Dense(3, input_dim=2)]), tmp_path / "m.onnx")
