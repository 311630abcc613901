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

from . import activations, initializers, losses, optimizers, regularizers

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


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__activation__" in value:
        act = activations.get(value["__activation__"])
        act.alpha, act.beta = value["alpha"], value["beta"]
        return act
    if "__regularizer__" in value:
        return regularizers.l2(value["l2"])
    raise ValueError(f"unknown entry in a model file: {value!r}")


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


def _from_object_config(base, entry):
    classes = _subclasses(base)
    if entry["class_name"] not in classes:
        raise ValueError(f"the model file names an unknown {base.__name__} {entry['class_name']!r}")
    return classes[entry["class_name"]](**{k: _decode(v) for k, v in entry["config"].items()})


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
              "layer_rngs": {l.name: _generator_state(l._rng) for l in model.layers
                             if getattr(l, "_rng", None) is not None},
              "compile": None}
    arrays = {}
    if model.built:
        arrays["params"] = model._params
    if model.loss is not None:
        opt = model.optimizer
        state = {name: getattr(opt, name) for name in opt._state_names if getattr(opt, name) is not None}
        config["compile"] = {"optimizer": _object_config(opt), "iterations": opt.iterations,
                             "optimizer_state": sorted(state), "loss": _object_config(model.loss),
                             "metrics": list(model.metrics)}
        arrays.update({f"optimizer{name}": value for name, value in state.items()})
    return config, arrays


def model_from_payload(config, arrays):
    from .layers import Layer
    from .layers.input_layer import InputLayer
    from .models import Sequential
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError("not a cnn model: the file's configuration does not describe a cnn.Sequential")
    if config.get("version") != VERSION:
        raise ValueError(f"cnn model file version {config.get('version')} is not supported (expected {VERSION})")
    model = Sequential(name=config["name"], seed=config["seed"], dtype=config["dtype"])
    if config["input_layer"] is not None:
        model.add(InputLayer.from_config({k: _decode(v) for k, v in config["input_layer"]["config"].items()}))
    classes = _subclasses(Layer)
    for entry in config["layers"]:
        if entry["class_name"] not in classes:
            raise ValueError(f"the model file names an unknown layer {entry['class_name']!r}; "
                             "import the module that defines it before loading")
        model.add(classes[entry["class_name"]].from_config({k: _decode(v) for k, v in entry["config"].items()}))
    if config["built"]:
        params, needed = arrays["params"], _parameter_count(model, tuple(config["input_shape"]))
        if params.shape != (needed,) or params.dtype != model.dtype:  # checked before build allocates `needed`
            raise ValueError(f"the model file's parameters have shape {params.shape} and dtype {params.dtype}; "
                             f"the architecture needs ({needed},) of {model.dtype}")
        model.build(tuple(config["input_shape"]))
        model._params[...] = params
    if config["rng"] is not None:
        model._rng = np.random.default_rng()
        model._rng.bit_generator.state = config["rng"]
    for name, state in config["layer_rngs"].items():
        layer = model.get_layer(name)
        layer._rng = np.random.default_rng()
        layer._rng.bit_generator.state = state
    compiled = config["compile"]
    if compiled is not None:
        model.compile(optimizer=_from_object_config(optimizers.Optimizer, compiled["optimizer"]),
                      loss=_from_object_config(losses.Loss, compiled["loss"]), metrics=compiled["metrics"])
        model.optimizer.iterations = compiled["iterations"]
        for name in compiled["optimizer_state"]:
            setattr(model.optimizer, name, np.array(arrays[f"optimizer{name}"]))
    return model


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
