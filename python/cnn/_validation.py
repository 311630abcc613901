"""Every user-facing check of meaning (shapes, dtypes, hyperparameters) with its message.

The C binding re-checks only the memory contract; the friendly words live here."""
import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)
INT_MAX = 2**31 - 1  # every size the C kernels take is an int


def as_float_array(x, name, dtype, ndim=None, min_ndim=None):
    """x as a C-contiguous array of `dtype`, rejecting what cannot be data (strings, objects, complex, NaN)."""
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name} must be array-like numbers, got {type(x).__name__}: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():  # the method: np.all() costs 3 µs more per call, twice a train_on_batch
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def as_labels(y, name, n_classes, n_samples):
    """Integer class labels in [0, n_classes) as int64 (N,)."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be integer class labels of shape ({n_samples},), got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} samples but the input has {n_samples}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold whole-number class labels, got non-integer values")
    elif arr.dtype.kind not in "biu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.min() < 0 or arr.max() >= n_classes:
        raise ValueError(f"{name} must lie in [0, {n_classes}) for {n_classes} outputs, "
                         f"got values in [{arr.min()}, {arr.max()}]")
    return arr


def check_number(value, name, low=None, high=None, low_open=False, high_open=False, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite {'integer' if integer else 'number'}, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def check_choice(value, name, choices):
    try:
        known = value in choices
    except TypeError:  # unhashable: a list or a dict is no choice's name
        known = False
    if not known:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_pair(value, name, low=1):
    """An int or a pair of ints (height, width), each >= low, as a tuple of two ints."""
    pair = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        pair = tuple(pair)
    except TypeError:
        raise TypeError(f"{name} must be an integer or a pair of integers, got {value!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be an integer or a pair of integers, got {value!r}")
    return tuple(int(check_number(v, name, low=low, high=INT_MAX, integer=True)) for v in pair)


def check_shape(value, name):
    """A shape without the batch: a sequence of ints in [1, INT_MAX], as a tuple."""
    try:
        dims = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers, got {value!r}") from None
    if not dims:
        raise ValueError(f"{name} must have at least one dimension, got {value!r}")
    return tuple(int(check_number(d, name, low=1, high=INT_MAX, integer=True)) for d in dims)


def check_image_shape(layer, input_shape):
    """Convolution and pooling layers take (channels, height, width) inputs, batch excluded."""
    if len(input_shape) != 3:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) expects inputs of shape "
                         f"(None, channels, height, width), got (None, {', '.join(map(str, input_shape))})")
    return input_shape


def check_name(value, name):
    """A layer's or a model's name: None or a string."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    return value


def check_kernel_size(layer, value, what):
    """A size a layer computed from its arguments (a padded input, a dilated window, an output dimension)
    must fit the C kernels' int."""
    if value > INT_MAX:
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}): {what} is {value}, more than the "
                         f"kernels' limit of {INT_MAX}")
    return value


def check_list(value, name, item_type, item_name):
    """None, or a list or tuple whose items are all item_type, as a list."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of {item_name}, got {type(value).__name__}: {value!r}")
    for item in value:
        if not isinstance(item, item_type):
            raise TypeError(f"{name} must be a list of {item_name}, got an item of type {type(item).__name__}: "
                            f"{item!r}")
    return list(value)
