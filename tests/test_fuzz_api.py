"""The Python API under malformed arguments and files: Sequential.fit/predict, the layers, the sklearn
MLPs, load_idx and load_model raise TypeError/ValueError naming what is wrong, and a failed fit leaves a
previously fitted model exactly as it was (weights, predictions, optimizer step, history).
(Ctrl-C is test_interrupt.py's; a loss that turns NaN is test_numerical_guards.py's.)"""
import gzip
import io
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnn
from cnn.datasets import load_idx
from cnn.layers import (AveragePooling2D, Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D,
                        ZeroPadding2D)
from cnn.models import load_model
from cnn.sklearn import MLPClassifier, MLPRegressor

ERRORS = (TypeError, ValueError)
FUZZ = settings(max_examples=int(os.environ.get("CNN_API_FUZZ_EXAMPLES", "60")), deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
JUNK = st.sampled_from([None, -1, 0, 2**31 - 1, 2**31, 2**40, 1.5, np.nan, np.inf, "x", "", b"\0", [], (), (0, 0),
                        (3, -1), (1, 2, 3), {"a": 1}, object(), True, 1j, np.array([[1, 2]])])


# ---- layers ---------------------------------------------------------------------------------------------

VALID = {
    Dense: dict(units=3, activation="relu"),
    Conv2D: dict(filters=2, kernel_size=3, strides=1, padding="same", dilation_rate=1, groups=1,
                 activation="tanh"),
    MaxPooling2D: dict(pool_size=2, strides=None, padding="valid"),
    AveragePooling2D: dict(pool_size=2, strides=1, padding="same"),
    ZeroPadding2D: dict(padding=1),
    Dropout: dict(rate=0.5, seed=1),
}
INPUT = {Dense: (4,), Dropout: (4,)}  # the others take (channels, height, width)


def build_with(layer):
    shape = INPUT.get(type(layer), (2, 5, 5))
    model = cnn.Sequential([Input(shape), layer, Flatten(), Dense(2, activation="softmax")], seed=0)
    model.compile(loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((3,) + shape)
    model.fit(x, np.array([0, 1, 0]), epochs=1, verbose=0)


@FUZZ
@given(cls=st.sampled_from(sorted(VALID, key=lambda c: c.__name__)), data=st.data(), junk=JUNK)
def test_layer_arguments(cls, data, junk):
    """A spoiled constructor argument is refused by name, or the layer is usable (or refused at build)."""
    name = data.draw(st.sampled_from(sorted(VALID[cls])))
    kwargs = dict(VALID[cls], **{name: junk})
    try:
        layer = cls(**kwargs)
    except ERRORS as e:
        assert name in str(e), str(e)
        return
    try:
        build_with(layer)
    except ERRORS + (MemoryError,):  # units=2**31-1 is a valid request for 32 GiB, refused at build
        pass


@pytest.mark.parametrize("shape", [(0,), (-3,), ("a",), (None,), 5, (2.5,)])
def test_input_shape_is_checked_by_name(shape):
    with pytest.raises(ERRORS, match="input_shape"):
        Dense(3, input_shape=shape)


# ---- Sequential --------------------------------------------------------------------------------------------


def fitted_sequential():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((24, 1, 6, 6)), rng.integers(0, 3, 24)
    model = cnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(1, 6, 6)), MaxPooling2D(2), Flatten(),
                            Dense(3, activation="softmax")], seed=0, dtype="float64")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model, x, y


def snapshot(model, x):
    return (model.get_weights(), model.predict(x, verbose=0), model.optimizer.iterations,
            [v.copy() for v in vars(model.optimizer).values() if isinstance(v, np.ndarray)], model.history)


def assert_unchanged(before, after):
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2] == after[2] and before[4] is after[4]
    for a, b in zip(before[3], after[3]):
        np.testing.assert_array_equal(a, b)


BAD_FITS = {
    "x NaN": (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), y), {}, "x"),
    "x inf": (lambda x, y: (x * np.inf, y), {}, "x"),
    "x shape": (lambda x, y: (x[:, :, :5], y), {}, "x"),
    "x rank": (lambda x, y: (x.reshape(-1), y), {}, "x"),
    "x strings": (lambda x, y: (x.astype(str), y), {}, "x"),
    "x empty": (lambda x, y: (x[:0], y[:0]), {}, "x"),
    "x None": (lambda x, y: (None, y), {}, "x"),
    "y out of range": (lambda x, y: (x, y + 3), {}, "y"),
    "y negative": (lambda x, y: (x, y - 5), {}, "y"),
    "y fractional": (lambda x, y: (x, y + 0.5), {}, "y"),
    "y NaN": (lambda x, y: (x, np.full(len(y), np.nan)), {}, "y"),
    "y short": (lambda x, y: (x, y[:-1]), {}, "y"),
    "y strings": (lambda x, y: (x, y.astype(str)), {}, "y"),
    "y None": (lambda x, y: (x, None), {}, "y"),
    "batch_size 0": (lambda x, y: (x, y), {"batch_size": 0}, "batch_size"),
    "batch_size float": (lambda x, y: (x, y), {"batch_size": 2.5}, "batch_size"),
    "epochs negative": (lambda x, y: (x, y), {"epochs": -1}, "epochs"),
    "epochs string": (lambda x, y: (x, y), {"epochs": "3"}, "epochs"),
    "validation_split 1": (lambda x, y: (x, y), {"validation_split": 1.0}, "validation_split"),
    "validation_split NaN": (lambda x, y: (x, y), {"validation_split": np.nan}, "validation_split"),
    "validation_data bad y": (lambda x, y: (x, y), {"validation_data": "bad y"}, "y"),
    "validation_data 4-tuple": (lambda x, y: (x, y), {"validation_data": (1, 2, 3, 4)}, "validation_data"),
    "verbose": (lambda x, y: (x, y), {"verbose": 7}, "verbose"),
    "initial_epoch": (lambda x, y: (x, y), {"initial_epoch": -2}, "initial_epoch"),
}


@pytest.mark.parametrize("case", sorted(BAD_FITS))
def test_failed_sequential_fit_leaves_the_model_unchanged(case):
    model, x, y = fitted_sequential()
    spoil, kwargs, name = BAD_FITS[case]
    if kwargs.get("validation_data") == "bad y":
        kwargs = {"validation_data": (x, y + 10)}
    before = snapshot(model, x)
    bx, by = spoil(x, y)
    with pytest.raises(ERRORS, match=name):
        model.fit(bx, by, **dict({"epochs": 3, "verbose": 0}, **kwargs))
    assert_unchanged(before, snapshot(model, x))
    model.fit(x, y, epochs=1, verbose=0)  # and it still trains


SMALL_JUNK = JUNK.filter(lambda v: not isinstance(v, int) or v < 100)  # 2**40 epochs would train for ever


@FUZZ
@given(junk=JUNK, where=st.sampled_from(["optimizer", "loss", "metrics"]))
def test_compile_with_junk_names_the_argument(junk, where):
    model = cnn.Sequential([Dense(2, input_dim=3)])
    try:
        model.compile(**dict({"optimizer": "sgd", "loss": "mse", "metrics": None}, **{where: junk}))
    except ERRORS as e:
        assert where in str(e), str(e)
        assert model.loss is None
    else:  # None and empty lists are valid metrics
        assert where == "metrics" and model.metrics == []


@FUZZ
@given(junk=st.one_of(JUNK, st.lists(JUNK, min_size=1, max_size=3)), method=st.sampled_from(["fit", "evaluate",
                                                                                              "predict"]))
def test_callbacks_junk_is_refused_by_name(junk, method):
    model, x, y = FITTED
    before = snapshot(model, x)
    if junk is None or (isinstance(junk, (list, tuple)) and not junk):  # no callbacks
        return
    with pytest.raises(TypeError, match="callbacks"):
        getattr(model, method)(*((x,) if method == "predict" else (x, y)), callbacks=junk, verbose=0)
    assert_unchanged(before, snapshot(model, x))


@FUZZ
@given(junk=SMALL_JUNK, where=st.sampled_from(["x", "y", "batch_size", "epochs", "validation_split", "shuffle"]))
def test_sequential_fit_with_junk(junk, where):
    model, x, y = FITTED
    before = snapshot(model, x)
    args = {"x": x, "y": y, "epochs": 1, "verbose": 0, where: junk}
    try:
        model.fit(**args)
    except ERRORS:
        assert_unchanged(before, snapshot(model, x))


@pytest.mark.parametrize("bad", [None, "x", np.zeros((2, 1, 5, 6)), np.zeros((0, 1, 6, 6)), np.zeros(36),
                                 np.full((2, 1, 6, 6), np.nan), np.zeros((2, 1, 6, 6), complex)])
def test_sequential_predict_rejects_by_name(bad):
    model, _, _ = FITTED
    with pytest.raises(ERRORS, match="x"):
        model.predict(bad, verbose=0)
    with pytest.raises(ERRORS, match="batch_size"):
        model.predict(np.zeros((2, 1, 6, 6)), batch_size=0, verbose=0)


FITTED = fitted_sequential()


# ---- scikit-learn estimators ---------------------------------------------------------------------------------


def fitted_mlp(cls, solver):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 5))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0) if cls is MLPClassifier else X @ rng.standard_normal(5)
    est = cls(hidden_layer_sizes=(7,), solver=solver, max_iter=15, random_state=0, tol=0, n_iter_no_change=10**6)
    with pytest.warns(Warning):  # ConvergenceWarning: 15 iterations are not enough, on purpose
        est.fit(X, y)
    return est, X, y


def mlp_state(est, X):
    arrays = [a.copy() for a in est.coefs_ + est.intercepts_]
    return arrays, est.predict(X), est.n_iter_, list(getattr(est, "loss_curve_", [])), est.n_features_in_


def assert_same_mlp(a, b):
    for u, v in zip(a[0], b[0]):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2:] == b[2:]


BAD_MLP_FITS = {
    "X NaN": lambda X, y: (np.where(X > 1.5, np.nan, X), y),
    "X inf": lambda X, y: (X * np.inf, y),
    "X features": lambda X, y: (X[:, :3], y),  # refits from scratch: only the partial_fit path must refuse
    "X strings": lambda X, y: (np.full(X.shape, "a"), y),
    "X 1-D": lambda X, y: (X[:, 0], y),
    "y short": lambda X, y: (X, y[:-1]),
    "y NaN": lambda X, y: (X, np.full(len(y), np.nan)),
    "y None": lambda X, y: (X, None),
    "early stopping set too small": lambda X, y: (X[:4], y[:4]),
}


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("case", sorted(BAD_MLP_FITS))
def test_failed_mlp_fit_leaves_the_estimator_unchanged(case, cls, solver):
    est, X, y = fitted_mlp(cls, solver)
    before = mlp_state(est, X)
    bX, by = BAD_MLP_FITS[case](X, y)
    if case == "early stopping set too small":
        if solver == "lbfgs":
            return
        est.set_params(early_stopping=True, validation_fraction=0.1)
    if case == "X features":
        if solver == "lbfgs":
            return
        with pytest.raises(ValueError, match="features"):
            est.partial_fit(bX, by)
    else:
        with pytest.raises(ERRORS), np.errstate(all="ignore"):  # sklearn's finiteness check sums inf - inf
            est.fit(bX, by)
    est.set_params(early_stopping=False)
    assert_same_mlp(before, mlp_state(est, X))


def test_failed_first_mlp_fit_leaves_nothing_fitted():
    est = MLPRegressor(hidden_layer_sizes=(3,), early_stopping=True, random_state=0)
    with pytest.raises(ValueError, match="validation set is too small"):
        est.fit(np.zeros((4, 2)), [0.0, 1.0, 0.0, 1.0])
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]


@FUZZ
@given(junk=SMALL_JUNK,
       where=st.sampled_from(["hidden_layer_sizes", "alpha", "batch_size", "learning_rate_init", "max_iter",
                              "momentum", "beta_1", "epsilon", "activation", "solver"]))
def test_mlp_hyperparameter_junk_is_refused_by_name(junk, where):
    est, X, y = MLP_FITTED
    before, kept = mlp_state(est, X), est.get_params()[where]
    try:
        with np.errstate(all="ignore"):
            est.set_params(**{where: junk}).fit(X, y)
    except ERRORS as e:
        est.set_params(**{where: kept})
        assert where in str(e), str(e)
        assert_same_mlp(before, mlp_state(est, X))
    except Warning:  # warnings are errors in tests: a junk value that still trains may not converge
        pass
    finally:
        est.set_params(**{where: kept})


MLP_FITTED = fitted_mlp(MLPClassifier, "adam")


# ---- load_idx ---------------------------------------------------------------------------------------------------


def idx_bytes(arr, code=0x08):
    return bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


GOOD_IDX = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))


@FUZZ
@given(blob=st.one_of(st.binary(max_size=64), st.integers(0, len(GOOD_IDX) - 1).map(lambda n: GOOD_IDX[:n]),
                      st.tuples(st.integers(0, len(GOOD_IDX) - 1), st.integers(0, 255)).map(
                          lambda t: GOOD_IDX[:t[0]] + bytes([t[1]]) + GOOD_IDX[t[0] + 1:])),
       compress=st.booleans())
def test_load_idx_random_truncated_and_flipped_files(tmp_path_factory, blob, compress):
    path = tmp_path_factory.mktemp("idx") / "f.idx"
    path.write_bytes(gzip.compress(blob) if compress else blob)
    try:
        arr = load_idx(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    assert arr.size * arr.itemsize + 4 + 4 * arr.ndim == len(blob)  # only an exactly consistent file loads


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dims", [(2**32 - 1,), (2**32 - 1, 2**32 - 1, 2**32 - 1), (65536,) * 8])
def test_load_idx_huge_declared_sizes_do_not_allocate(tmp_path, dims, compress):
    blob = bytes([0, 0, 0x0E, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + b"\0" * 64
    path = tmp_path / "huge.idx"
    path.write_bytes(gzip.compress(blob) if compress else blob)
    with pytest.raises(ValueError, match="huge.idx"):
        load_idx(path)


def test_load_idx_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "m.idx"
    path.write_bytes(b"\x12\x34" + GOOD_IDX[2:])
    with pytest.raises(ValueError, match="m.idx.*magic"):
        load_idx(path)


# ---- load_model -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    FITTED[0].save(path)
    return path.read_bytes()


def check_load(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("bad") / "m.npz"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="m.npz"):
        load_model(path)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True))
def test_load_model_truncated(tmp_path_factory, model_file, cut):
    check_load(tmp_path_factory, model_file[:int(cut * len(model_file))])


@FUZZ
@given(data=st.data())
def test_load_model_flipped_bytes_load_or_raise_value_error(tmp_path_factory, model_file, data):
    at = data.draw(st.integers(0, len(model_file) - 1))
    blob = model_file[:at] + bytes([model_file[at] ^ data.draw(st.integers(1, 255))]) + model_file[at + 1:]
    path = tmp_path_factory.mktemp("flip") / "m.npz"
    path.write_bytes(blob)
    try:
        load_model(path)
    except ValueError as e:
        assert "m.npz" in str(e)


@FUZZ
@given(blob=st.binary(max_size=256))
def test_load_model_random_bytes(tmp_path_factory, blob):
    check_load(tmp_path_factory, blob)


def npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def declared(shape, dtype="<f4"):
    """An .npy entry whose header declares `shape` but that holds 16 bytes."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\0" * 16


def test_load_model_huge_declared_array_is_refused_without_allocating(tmp_path_factory, model_file):
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model_file)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, declared((2**40,)) if info.filename == "params.npy" else src.read(info))
    check_load(tmp_path_factory, buf.getvalue())


@pytest.mark.parametrize("config", [
    "not json", "[]", '{"format": "cnn.Sequential"}', '{"format": "cnn.Sequential", "version": 1}',
    '{"format": "cnn.Sequential", "version": 1, "name": "m", "seed": 0, "dtype": "float32", "built": false, '
    '"input_shape": null, "input_layer": null, "layers": 5, "rng": null, "layer_rngs": {}, "compile": null}',
    '{"format": "cnn.Sequential", "version": 1, "name": "m", "seed": 0, "dtype": "float32", "built": true, '
    '"input_shape": [100000], "input_layer": null, "layers": [{"class_name": "Dense", "config": {"units": 100000}}],'
    ' "rng": null, "layer_rngs": {}, "compile": null}',
    '{"format": "cnn.Sequential", "version": 1, "name": "m", "seed": 0, "dtype": "float32", "built": false, '
    '"input_shape": null, "input_layer": null, "layers": [{"class_name": "Dense", "config": {"units": -4}}], '
    '"rng": null, "layer_rngs": {}, "compile": null}',
])
def test_load_model_malformed_config(tmp_path_factory, config):
    check_load(tmp_path_factory, npz(config=np.array(config), params=np.zeros(3, np.float32)))


JSON_JUNK = st.sampled_from([None, -1, 0, 2**31, 2**40, 1.5, float("nan"), float("inf"), "x", "", [], [0, 0],
                             [3, -1], {"a": 1}, True, {"__tuple__": 5}, {"__activation__": "relu"}, "__class__"])


def json_paths(node, path=()):
    """Every (path) to a value inside a JSON tree, the root excluded."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield path + (key,)
        yield from json_paths(child, path + (key,))


@FUZZ
@given(data=st.data(), junk=JSON_JUNK)
def test_load_model_with_a_junk_field_fails_at_load_or_works(tmp_path_factory, model_file, data, junk):
    """Any one field of a saved model's configuration replaced by junk: load_model refuses it naming the
    file, or the model it returns predicts, evaluates and trains (only a diverging loss may stop it)."""
    import json
    with np.load(io.BytesIO(model_file)) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays.pop("config")[()]))
    path = data.draw(st.sampled_from(sorted(json_paths(config), key=repr)))
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = junk
    file = tmp_path_factory.mktemp("junk") / "m.npz"
    file.write_bytes(npz(config=np.array(json.dumps(config)), **arrays))
    try:
        model = load_model(file)
    except ValueError as e:
        assert "m.npz" in str(e)
        return
    _, x, y = FITTED
    assert np.isfinite(model.predict(x, verbose=0)).all()
    model.evaluate(x, y, verbose=0)
    try:
        model.fit(x, y, epochs=1, verbose=0)
    except FloatingPointError:  # a junk learning rate (2**40) is a valid one that diverges
        pass
