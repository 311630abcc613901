"""Model configuration as JSON: constructor arguments encoded and decoded, and every field checked where it
is read, so that a malformed configuration (from a file or a pickle) fails with a ValueError naming the field.

The model classes use these to write and read their own configuration (get_config, from_config); this
module knows no model class."""
import inspect
import json

import numpy as np

from . import activations, distributed, initializers, losses, metrics, optimizers, regularizers
from ._validation import check_number

__all__ = ["encode", "decode", "fields", "typed", "construct", "generator", "generator_state", "array",
           "subclasses", "layer_config", "compile_config", "compile_from_config"]


def encode(value, where):
    """A constructor argument as JSON, or ValueError naming what cannot be saved."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, where) for v in value]}
    if isinstance(value, list):
        return [encode(v, where) for v in value]
    if isinstance(value, activations.ActivationFunction):
        return {"__activation__": value.name, "alpha": value.alpha, "beta": value.beta}
    if isinstance(value, regularizers.L2):
        return {"__regularizer__": "l2", "l2": value.l2}
    if callable(value) and initializers._REGISTRY.get(getattr(value, "__name__", None)) is value:
        return value.__name__
    raise ValueError(f"cannot save {where}={value!r}: only numbers, strings, tuples, named activations, "
                     "initializers and cnn.regularizers.l2 can be saved")


# ---- reading: every field is checked where it is read, and an error names it ----------------------------

def fields(value, where, keys):
    """value as a dict with exactly `keys`."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {value!r}")
    if value.keys() != set(keys):
        missing, unknown = sorted(set(keys) - value.keys()), sorted(value.keys() - set(keys))
        raise ValueError(f"{where} must have the fields {sorted(keys)}"
                         + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
    return value


def typed(value, where, kind, low=None, high=None, none=False):
    """value if it is a `kind` (int excludes bool) in [low, high], or None when none=True."""
    if value is None and none:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or \
            (low is not None and value < low) or (high is not None and value > high):
        expected = kind.__name__ + (f" in [{low}, {high}]" if low is not None else "")
        raise ValueError(f"{where} must be {'null or ' if none else ''}{expected}, got {value!r}")
    return value


def decode(value, where):
    if isinstance(value, list):
        return [decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        items = fields(value, where, ["__tuple__"])["__tuple__"]
        if not isinstance(items, list):
            raise ValueError(f"{where}.__tuple__ must be a list, got {items!r}")
        return tuple(decode(v, f"{where}[{i}]") for i, v in enumerate(items))
    if "__activation__" in value:
        fields(value, where, ["__activation__", "alpha", "beta"])
        act = activations.get(typed(value["__activation__"], f"{where}.__activation__", str))
        act.alpha, act.beta = (float(check_number(value[k], f"{where}.{k}")) for k in ("alpha", "beta"))
        return act
    if "__regularizer__" in value:
        if fields(value, where, ["__regularizer__", "l2"])["__regularizer__"] != "l2":
            raise ValueError(f"{where}.__regularizer__ must be 'l2', got {value['__regularizer__']!r}")
        return regularizers.l2(value["l2"])
    raise ValueError(f"{where} is an unknown entry: {value!r}")


def construct(classes, entry, where, kind):
    """An instance of the class `entry` names, built from its config; any refusal names the entry."""
    fields(entry, where, ["class_name", "config"])
    name = entry["class_name"]
    if not isinstance(name, str) or name not in classes:
        raise ValueError(f"{where}.class_name names an unknown {kind} {name!r}; known: {sorted(classes)} "
                         "(import the module that defines a custom one before loading)")
    config = entry["config"]
    if not isinstance(config, dict):
        raise ValueError(f"{where}.config must be an object, got {config!r}")
    kwargs = {k: decode(v, f"{where}.config.{k}") for k, v in config.items()}
    try:
        return classes[name](**kwargs) if kind != "layer" else classes[name].from_config(kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}.config: {e}") from None


def generator(state, where):
    """A NumPy generator in the saved state (the default bit generator's fields, each in its range)."""
    rng = np.random.default_rng()
    fields(state, where, ["bit_generator", "state", "has_uint32", "uinteger"])
    if state["bit_generator"] != type(rng.bit_generator).__name__:
        raise ValueError(f"{where}.bit_generator must be {type(rng.bit_generator).__name__!r}, "
                         f"got {state['bit_generator']!r}")
    for key in fields(state["state"], f"{where}.state", ["state", "inc"]):
        typed(state["state"][key], f"{where}.state.{key}", int, 0, 2**128 - 1)
    typed(state["has_uint32"], f"{where}.has_uint32", int, 0, 1)
    typed(state["uinteger"], f"{where}.uinteger", int, 0, 2**32 - 1)
    rng.bit_generator.state = state
    return rng


def array(arrays, key, shape, dtype):
    """arrays[key] (an entry of the file), of exactly this shape and (native) dtype."""
    if key not in arrays:
        raise ValueError(f"the array {key!r} is missing")
    arr = arrays[key]
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
        raise ValueError(f"the array {key!r} must have shape {shape} and dtype {dtype}, got "
                         f"{getattr(arr, 'shape', type(arr).__name__)} of {getattr(arr, 'dtype', '-')}")
    return arr


def object_config(obj):
    """Optimizers, losses and metrics keep their constructor arguments as attributes of the same names;
    keyword-only ones are aliases (an optimizer's lr=) and are not saved."""
    params = [p for p in list(inspect.signature(type(obj).__init__).parameters.values())[1:]
              if p.kind != p.KEYWORD_ONLY]
    return {"class_name": type(obj).__name__,
            "config": {p.name: encode(getattr(obj, p.name), f"{type(obj).__name__}.{p.name}") for p in params}}


def subclasses(base):
    found = {}
    for cls in base.__subclasses__():
        found[cls.__name__] = cls
        found.update(subclasses(cls))
    return found


def layer_config(layer):
    return {"class_name": type(layer).__name__,
            "config": {k: encode(v, f"{layer.name}.{k}") for k, v in layer.get_config().items()}}


def generator_state(rng):
    return None if rng is None else rng.bit_generator.state


COMPILE_FIELDS = ["optimizer", "iterations", "optimizer_state", "loss", "metrics"]
COMPILE_OPTIONAL = ["weighted_metrics", "loss_weights"]  # written only when compile was given them


def _metric_config(metric):
    """A metric name as it is, a Metric object as its class and constructor arguments."""
    return metric if isinstance(metric, str) else object_config(metric)


def _metrics_from_config(entries, where):
    if not isinstance(entries, list):
        raise ValueError(f"{where} must be a list, got {entries!r}")
    classes = subclasses(metrics.Metric)
    return [entry if isinstance(entry, str) else construct(classes, entry, f"{where}[{i}]", "metric")
            for i, entry in enumerate(entries)]


def compile_config(model, many=False):
    """(config, arrays) of a compiled model's optimizer, loss and metrics, or (None, {}) before compile; with
    many, a list of losses (one per output, model._losses) and the loss_weights."""
    if model.loss is None:
        return None, {}
    opt = model.optimizer
    if isinstance(opt, distributed.DistributedOptimizer):  # saved as the optimizer it wraps: a loaded model
        opt = opt.optimizer  # trains in whatever world it is loaded into
    state = {name: getattr(opt, name) for name in opt._state_names if getattr(opt, name) is not None}
    config = {"optimizer": object_config(opt), "iterations": opt.iterations, "optimizer_state": sorted(state),
              "loss": [object_config(loss) for loss in model._losses] if many else object_config(model.loss),
              "metrics": [_metric_config(m) for m in model.metrics]}
    if model.weighted_metrics:
        config["weighted_metrics"] = [_metric_config(m) for m in model.weighted_metrics]
    if many:  # a Functional always writes its weights (null when compile was given none)
        config["loss_weights"] = model.loss_weights
    elif model.loss_weights is not None:
        config["loss_weights"] = model._loss_weight
    return config, {f"optimizer{name}": value for name, value in state.items()}


def compile_from_config(model, compiled, arrays, many=False):
    """Compile `model` as `compiled` says and restore the optimizer's state; returns the array names read.
    many: the losses are a list, one per output, and loss_weights is given (compile_config's many)."""
    required = COMPILE_FIELDS + (["loss_weights"] if many else [])
    present = [k for k in COMPILE_OPTIONAL if isinstance(compiled, dict) and k in compiled and k not in required]
    fields(compiled, "config.compile", required + present)
    optimizer = construct(subclasses(optimizers.Optimizer), compiled["optimizer"], "config.compile.optimizer",
                          "optimizer")
    checked = [(optimizer, compiled["optimizer"], "config.compile.optimizer")]
    if many and not isinstance(compiled["loss"], list):
        raise ValueError(f"config.compile.loss must be a list of losses, got {compiled['loss']!r}")
    entries = [(e, f"config.compile.loss[{i}]") for i, e in enumerate(compiled["loss"])] if many else \
        [(compiled["loss"], "config.compile.loss")]
    loss = [construct(subclasses(losses.Loss), e, where, "loss") for e, where in entries]
    checked += [(obj, e, where) for obj, (e, where) in zip(loss, entries)]
    for obj, entry, where in checked:
        # a value the constructor coerced (a string for a bool) is not what the file says
        if json.dumps(object_config(obj), sort_keys=True) != json.dumps(entry, sort_keys=True):
            raise ValueError(f"{where}.config {entry['config']!r} does not describe a "
                             f"{type(obj).__name__} (it reads as {object_config(obj)['config']!r})")
    try:
        model.compile(optimizer=optimizer, loss=loss if many else loss[0], loss_weights=compiled.get("loss_weights"),
                      metrics=_metrics_from_config(compiled["metrics"], "config.compile.metrics"),
                      weighted_metrics=_metrics_from_config(compiled.get("weighted_metrics", []),
                                                            "config.compile.weighted_metrics"))
    except (TypeError, ValueError) as e:
        raise ValueError(f"config.compile.{'metrics or loss_weights' if many else 'metrics'}: {e}") from None
    optimizer.iterations = typed(compiled["iterations"], "config.compile.iterations", int, 0, 2**62)
    names = compiled["optimizer_state"]
    valid = isinstance(names, list) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
    if not valid or set(names) not in (set(), set(optimizer._state_names)):
        raise ValueError(f"config.compile.optimizer_state must be [] or the names {sorted(optimizer._state_names)} "
                         f"of {type(optimizer).__name__}'s state, got {names!r}")
    if names and not model.built:
        raise ValueError("config.compile.optimizer_state is not empty but the model is not built")
    for name in names:
        setattr(optimizer, name, np.array(array(arrays, f"optimizer{name}", model._grads.shape, model.dtype)))
    return {f"optimizer{name}" for name in names}
