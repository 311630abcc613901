"""Model files: one .npz holding the architecture, compile settings and generator states as a JSON entry,
the flat parameter buffer, and the optimizer's state arrays.

A model saved and loaded (or pickled) continues bit for bit as if it had never been saved: the same
weights, optimizer state and step count, and the same random generator states (shuffling, dropout).
Files are written to a temporary file in the target's directory, flushed to disk, and renamed over the
target, so a crash mid-save leaves the previous file intact."""
import io
import json
import os
import tempfile
import tokenize
import zipfile

import numpy as np

from . import activations, distributed, initializers, losses, optimizers, regularizers
from ._validation import check_number, check_shape

__all__ = ["save_model", "load_model"]

FORMAT, VERSION = "cnn.Sequential", 1


def _encode(value, where):
    """A constructor argument as JSON, or ValueError naming what cannot be saved."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, activations.ActivationFunction):
        return {"__activation__": value.name, "alpha": value.alpha, "beta": value.beta}
    if isinstance(value, regularizers.L2):
        return {"__regularizer__": "l2", "l2": value.l2}
    if callable(value) and initializers._REGISTRY.get(getattr(value, "__name__", None)) is value:
        return value.__name__
    raise ValueError(f"cannot save {where}={value!r}: only numbers, strings, tuples, named activations, "
                     "initializers and cnn.regularizers.l2 can be saved")


# ---- reading: every field is checked where it is read, and an error names it ----------------------------

def _entry(value, where, keys):
    """value as a dict with exactly `keys`."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {value!r}")
    if value.keys() != set(keys):
        missing, unknown = sorted(set(keys) - value.keys()), sorted(value.keys() - set(keys))
        raise ValueError(f"{where} must have the fields {sorted(keys)}"
                         + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
    return value


def _typed(value, where, kind, low=None, high=None, none=False):
    """value if it is a `kind` (int excludes bool) in [low, high], or None when none=True."""
    if value is None and none:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or \
            (low is not None and value < low) or (high is not None and value > high):
        expected = kind.__name__ + (f" in [{low}, {high}]" if low is not None else "")
        raise ValueError(f"{where} must be {'null or ' if none else ''}{expected}, got {value!r}")
    return value


def _decode(value, where):
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        items = _entry(value, where, ["__tuple__"])["__tuple__"]
        if not isinstance(items, list):
            raise ValueError(f"{where}.__tuple__ must be a list, got {items!r}")
        return tuple(_decode(v, f"{where}[{i}]") for i, v in enumerate(items))
    if "__activation__" in value:
        _entry(value, where, ["__activation__", "alpha", "beta"])
        act = activations.get(_typed(value["__activation__"], f"{where}.__activation__", str))
        act.alpha, act.beta = (float(check_number(value[k], f"{where}.{k}")) for k in ("alpha", "beta"))
        return act
    if "__regularizer__" in value:
        if _entry(value, where, ["__regularizer__", "l2"])["__regularizer__"] != "l2":
            raise ValueError(f"{where}.__regularizer__ must be 'l2', got {value['__regularizer__']!r}")
        return regularizers.l2(value["l2"])
    raise ValueError(f"{where} is an unknown entry: {value!r}")


def _construct(classes, entry, where, kind):
    """An instance of the class `entry` names, built from its config; any refusal names the entry."""
    _entry(entry, where, ["class_name", "config"])
    name = entry["class_name"]
    if not isinstance(name, str) or name not in classes:
        raise ValueError(f"{where}.class_name names an unknown {kind} {name!r}; known: {sorted(classes)} "
                         "(import the module that defines a custom one before loading)")
    config = entry["config"]
    if not isinstance(config, dict):
        raise ValueError(f"{where}.config must be an object, got {config!r}")
    kwargs = {k: _decode(v, f"{where}.config.{k}") for k, v in config.items()}
    try:
        return classes[name](**kwargs) if kind != "layer" else classes[name].from_config(kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}.config: {e}") from None


def _generator(state, where):
    """A NumPy generator in the saved state (the default bit generator's fields, each in its range)."""
    rng = np.random.default_rng()
    _entry(state, where, ["bit_generator", "state", "has_uint32", "uinteger"])
    if state["bit_generator"] != type(rng.bit_generator).__name__:
        raise ValueError(f"{where}.bit_generator must be {type(rng.bit_generator).__name__!r}, "
                         f"got {state['bit_generator']!r}")
    for key in _entry(state["state"], f"{where}.state", ["state", "inc"]):
        _typed(state["state"][key], f"{where}.state.{key}", int, 0, 2**128 - 1)
    _typed(state["has_uint32"], f"{where}.has_uint32", int, 0, 1)
    _typed(state["uinteger"], f"{where}.uinteger", int, 0, 2**32 - 1)
    rng.bit_generator.state = state
    return rng


def _array(arrays, key, shape, dtype):
    """arrays[key] (an entry of the file), of exactly this shape and (native) dtype."""
    if key not in arrays:
        raise ValueError(f"the array {key!r} is missing")
    arr = arrays[key]
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
        raise ValueError(f"the array {key!r} must have shape {shape} and dtype {dtype}, got "
                         f"{getattr(arr, 'shape', type(arr).__name__)} of {getattr(arr, 'dtype', '-')}")
    return arr


def _object_config(obj):
    """Optimizers and losses keep their constructor arguments as attributes of the same names."""
    import inspect
    params = inspect.signature(type(obj).__init__).parameters
    return {"class_name": type(obj).__name__,
            "config": {k: _encode(getattr(obj, k), f"{type(obj).__name__}.{k}") for k in list(params)[1:]}}


def _subclasses(base):
    found = {}
    for cls in base.__subclasses__():
        found[cls.__name__] = cls
        found.update(_subclasses(cls))
    return found


def _layer_config(layer):
    return {"class_name": type(layer).__name__,
            "config": {k: _encode(v, f"{layer.name}.{k}") for k, v in layer.get_config().items()}}


def _generator_state(rng):
    return None if rng is None else rng.bit_generator.state


def model_payload(model):
    """(config, arrays): everything needed to rebuild `model` exactly."""
    config = {"format": FORMAT, "version": VERSION, "name": model.name, "seed": model.seed,
              "dtype": model.dtype.name, "built": model.built,
              "input_shape": None if model.input_shape is None else list(model.input_shape),
              "input_layer": None if model._input_layer is None else _layer_config(model._input_layer),
              "layers": [_layer_config(layer) for layer in model.layers],
              "rng": _generator_state(model._rng),
              "layer_rngs": {layer.name: _generator_state(layer._rng) for layer in model.layers
                             if getattr(layer, "_rng", None) is not None},
              "compile": None}
    arrays = {}
    if model.built:
        arrays["params"] = model._params
    if model.loss is not None:
        opt = model.optimizer
        if isinstance(opt, distributed.DistributedOptimizer):  # saved as the optimizer it wraps: a loaded model
            opt = opt.optimizer  # trains in whatever world it is loaded into
        state = {name: getattr(opt, name) for name in opt._state_names if getattr(opt, name) is not None}
        config["compile"] = {"optimizer": _object_config(opt), "iterations": opt.iterations,
                             "optimizer_state": sorted(state), "loss": _object_config(model.loss),
                             "metrics": list(model.metrics)}
        arrays.update({f"optimizer{name}": value for name, value in state.items()})
    return config, arrays


TOP_FIELDS = ["format", "version", "name", "seed", "dtype", "built", "input_shape", "input_layer", "layers", "rng",
              "layer_rngs", "compile"]
COMPILE_FIELDS = ["optimizer", "iterations", "optimizer_state", "loss", "metrics"]


def model_from_payload(config, arrays):
    """The model `config` and `arrays` (from model_payload) describe; ValueError naming the first field that
    is missing, unknown, of the wrong type or out of range, or an array of the wrong shape or dtype."""
    from .layers import Layer
    from .layers.input_layer import InputLayer
    from .models import Sequential
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError("not a cnn model: the file's configuration does not describe a cnn.Sequential")
    if type(config.get("version")) is not int or config["version"] != VERSION:
        raise ValueError(f"cnn model file version {config.get('version')!r} is not supported (expected {VERSION})")
    _entry(config, "config", TOP_FIELDS)
    if not isinstance(arrays, dict):
        raise ValueError(f"the arrays must be a dict, got {type(arrays).__name__}")
    try:
        model = Sequential(name=_typed(config["name"], "config.name", str), seed=config["seed"],
                           dtype=_typed(config["dtype"], "config.dtype", str))
    except (TypeError, ValueError) as e:
        raise ValueError(f"config: {e}") from None
    if config["input_layer"] is not None:
        model.add(_construct({"InputLayer": InputLayer}, config["input_layer"], "config.input_layer", "layer"))
    if not isinstance(config["layers"], list):
        raise ValueError(f"config.layers must be a list, got {config['layers']!r}")
    classes = _subclasses(Layer)
    for i, entry in enumerate(config["layers"]):
        try:
            model.add(_construct(classes, entry, f"config.layers[{i}]", "layer"))
        except (TypeError, ValueError) as e:  # an Input among the layers, a repeated name
            raise ValueError(f"config.layers[{i}]: {e}") from None
    input_shape = config["input_shape"]
    if input_shape is not None:
        try:
            input_shape = check_shape(_typed(input_shape, "config.input_shape", list), "config.input_shape")
        except (TypeError, ValueError) as e:
            raise ValueError(f"config.input_shape: {e}") from None
        if model.input_shape is not None and tuple(model.input_shape) != input_shape:
            raise ValueError(f"config.input_shape is {list(input_shape)} but the layers declare {model.input_shape}")
    expected = set()
    if _typed(config["built"], "config.built", bool):
        expected.add("params")
        if input_shape is None:
            raise ValueError("config.input_shape must be given for a built model, got null")
        try:
            needed = _parameter_count(model, input_shape)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config.layers do not fit config.input_shape {list(input_shape)}: {e}") from None
        # checked before build allocates `needed`
        params = _array(arrays, "params", (needed,), model.dtype)
        if not np.isfinite(params).all():
            raise ValueError("the array 'params' holds NaN or infinity")
        model.build(input_shape)
        model._params[...] = params
    if config["rng"] is not None:
        model._rng = _generator(config["rng"], "config.rng")
    if not isinstance(config["layer_rngs"], dict):
        raise ValueError(f"config.layer_rngs must be an object, got {config['layer_rngs']!r}")
    for name, state in config["layer_rngs"].items():
        layer = next((candidate for candidate in model.layers if candidate.name == name), None)
        if layer is None or not hasattr(layer, "_rng"):
            raise ValueError(f"config.layer_rngs names {name!r}, which is no layer with its own generator "
                             f"(Dropout with a seed) in the model")
        layer._rng = _generator(state, f"config.layer_rngs.{name}")
    if config["compile"] is not None:
        expected |= _compile_from_payload(model, config["compile"], arrays)
    unknown = sorted(set(arrays) - expected)
    if unknown:
        raise ValueError(f"unknown arrays {unknown} (this model has {sorted(expected)})")
    return model


def _compile_from_payload(model, compiled, arrays):
    """Compile `model` as `compiled` says and restore the optimizer's state; returns the array names read."""
    _entry(compiled, "config.compile", COMPILE_FIELDS)
    optimizer = _construct(_subclasses(optimizers.Optimizer), compiled["optimizer"], "config.compile.optimizer",
                           "optimizer")
    loss = _construct(_subclasses(losses.Loss), compiled["loss"], "config.compile.loss", "loss")
    for obj, entry, where in ((optimizer, compiled["optimizer"], "optimizer"), (loss, compiled["loss"], "loss")):
        # a value the constructor coerced (a string for a bool) is not what the file says
        if json.dumps(_object_config(obj), sort_keys=True) != json.dumps(entry, sort_keys=True):
            raise ValueError(f"config.compile.{where}.config {entry['config']!r} does not describe a "
                             f"{type(obj).__name__} (it reads as {_object_config(obj)['config']!r})")
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=compiled["metrics"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"config.compile.metrics: {e}") from None
    optimizer.iterations = _typed(compiled["iterations"], "config.compile.iterations", int, 0, 2**62)
    names = compiled["optimizer_state"]
    valid = isinstance(names, list) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
    if not valid or set(names) not in (set(), set(optimizer._state_names)):
        raise ValueError(f"config.compile.optimizer_state must be [] or the names {sorted(optimizer._state_names)} "
                         f"of {type(optimizer).__name__}'s state, got {names!r}")
    if names and not model.built:
        raise ValueError("config.compile.optimizer_state is not empty but the model is not built")
    for name in names:
        setattr(optimizer, name, np.array(_array(arrays, f"optimizer{name}", model._params.shape, model.dtype)))
    return {f"optimizer{name}" for name in names}


def _parameter_count(model, input_shape):
    """The size of the flat parameter buffer model.build(input_shape) would allocate, found without allocating."""
    shape, total = input_shape, 0
    for layer in model.layers:
        shape = layer.build(shape)
        total += sum(int(np.prod(s, dtype=object)) for _, s, _ in layer.weight_specs())
    return total


def _check_declared_sizes(archive, file_size):
    """cnn writes uncompressed archives, so no array is larger than the file: a header declaring more is
    refused before NumPy allocates what it declares."""
    for info in archive.infolist():
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes > file_size:
            raise ValueError(f"entry {info.filename!r} declares {nbytes} bytes of data, more than the whole file "
                             f"({file_size} bytes)")


def save_model(model, path):
    """Write `model` to `path` atomically (the previous file survives a crash mid-save)."""
    config, arrays = model_payload(model)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cnn-save-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, config=np.array(json.dumps(config)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_model(path):
    """The model saved at `path`, compiled as it was when saved; ValueError for a truncated or foreign file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{path!r} is not a cnn model file (not an .npz archive, or truncated)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_declared_sizes(archive, len(data))
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        config = json.loads(str(arrays.pop("config")[()]))
        return model_from_payload(config, arrays)
    # a file is data: whatever a malformed one makes fail (a list where a dict belongs, a missing key) is its fault
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OSError, zipfile.BadZipFile, EOFError,
            RecursionError, SyntaxError, tokenize.TokenError) as e:  # the last two: a garbled .npy header
        raise ValueError(f"{path!r} is not a readable cnn model file: {e}") from None
