"""Keras's random image augmentation layers, on NCHW batches: active only while training (fit,
train_on_batch), the identity in predict and evaluate. Each image draws its own transform.

The three warps (RandomRotation, RandomZoom, RandomTranslation) build one 2x3 matrix per image as Keras's
layers do, in (row, column) order, and resample with cnn.image's C kernel; RandomFlip and RandomContrast are
array operations. Draws come from the layer's own generator when it has a seed, else from the model's, so
`Sequential(seed=...)` makes a fit reproducible; the kernel gives the same bits at any thread count.

Fill modes are scipy.ndimage's: 'constant' reads fill_value outside the image without interpolating toward
it (Keras's own 'constant' blends the border cells with the fill), 'nearest' repeats the edge, 'reflect'
mirrors about it (d c b a | a b c d | d c b a, Keras's default). Only RandomFlip passes a gradient back
while training: put the augmentation layers first (as Keras models do), where none is needed."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._validation import check_choice, check_image_shape, check_number
from ..image import FILL_MODES
from ._buffers import reuse
from ._random import RandomLayerMixin
from .base import Layer

if TYPE_CHECKING:
    from .._types import Shape

__all__ = ["RandomRotation", "RandomZoom", "RandomTranslation", "RandomFlip", "RandomContrast"]

INTERPOLATIONS = {"nearest": 0, "bilinear": 1}


def factor_range(factor, name, symmetric=True, bound=None):
    """(lower, upper) from a Keras factor: a number f means (-f, f) (or (f, f) when not symmetric), a pair is
    itself; every value at most `bound` in size when given."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{name} must be a number or a pair (lower, upper), got {factor!r}")
        lower, upper = (check_number(f, name) for f in factor)
    else:
        f = check_number(factor, name)
        lower, upper = (-f, f) if symmetric else (f, f)
    if lower > upper:
        raise ValueError(f"{name} must have lower <= upper, got {factor!r}")
    if bound is not None and max(abs(lower), abs(upper)) > bound:
        raise ValueError(f"{name} must lie in [-{bound}, {bound}], got {factor!r}")
    return float(lower), float(upper)


@functools.cache
def row_bounds(ranges):
    """(lows, spans) as (k, 1) arrays for a tuple of k (low, high) ranges, made once: a list turned into an array
    every step costs as much as the draw."""
    return np.array([[low] for low, _ in ranges]), np.array([[high - low] for low, high in ranges])


def uniform_rows(rng, ranges, n):
    """(len(ranges), n) draws, row k uniform in ranges[k]: the numbers of one `rng.uniform(*ranges[k], n)` call
    per row in turn (numpy's uniform is low + (high - low)·random()), from one call of the generator (the same
    one for every layer: the first call of each kind in a step costs several times the next)."""
    lows, spans = row_bounds(ranges)
    u = rng.random((len(ranges), n))
    u *= spans
    u += lows
    return u


class RandomLayer(RandomLayerMixin, Layer):
    """The shared part: shape checks, the generator, identity outside training, and the backward rule."""

    augmentation = True

    def __init__(self, seed, name, input_shape):
        super().__init__(name=name, input_shape=input_shape)
        self._init_seed(seed)
        self._active = False

    def compute_output_shape(self, input_shape):
        return check_image_shape(self, input_shape)

    def forward(self, x, training=False, logits=False):
        self.check_input(x)
        self._active = bool(training)
        return self.augment(x, self.generator()) if training else x

    def backward(self, dy, need_dx=True):
        if not need_dx or dy is None or not self.wants_input_gradient():
            return None
        return self.transpose(dy) if self._active else dy

    def transpose(self, dy):
        raise ValueError(f"layer {self.name!r} ({type(self).__name__}) passes no gradient while training to the "
                         "layers with weights before it: put the augmentation layers first in the model")


class RandomAffine(RandomLayer):
    """A warp drawn per image: `matrices(n, h, w, rng)` gives (n, 2, 3) float64 matrices mapping an output
    (row, column, 1) to the input coordinate it reads. A subclass names its warp (`kind`, a WARP_* code) and its
    draws (`draws(n, rng)`, (k, n)); the kernel warp_matrix_forward builds the matrices from them with Keras's
    formulas (csrc/warp_matrix.c states them).

    Consecutive warp layers of a model with the same interpolation and fill resample once: the first draws
    every layer's matrices (each from its own generator, in layer order) and warps with their product, and
    the others pass their input on. The geometry is the same as one warp after another; the image is
    interpolated once instead of at every layer (less blur), and only what falls outside the original image
    is filled. One resampling instead of three, and one kernel call a layer for the matrices (in a training
    step, where the caches are cold, the dozen NumPy calls a layer it replaces cost more than the resampling),
    keep rotation, zoom and translation at a few percent of a LeNet-5 step (benchmarks/augmentation.py)."""

    kind: int

    def __init__(self, fill_mode, interpolation, fill_value, seed, name, input_shape):
        super().__init__(seed, name, input_shape)
        self.fill_mode = check_choice(fill_mode, "fill_mode", FILL_MODES)
        self.interpolation = check_choice(interpolation, "interpolation", INTERPOLATIONS)
        self.fill_value = float(check_number(fill_value, "fill_value"))
        self._buffers = {}

    def _joins(self, layer):
        return (isinstance(layer, RandomAffine) and layer.interpolation == self.interpolation
                and layer.fill_mode == self.fill_mode and layer.fill_value == self.fill_value)

    def _chain(self):
        """The warp layers this one applies: itself and the joining ones right after it in its model; none when
        it joins the layer before it."""
        layers = self.model.layers if self.model is not None else [self]
        i = layers.index(self)  # layers compare by identity
        if i > 0 and self._joins(layers[i - 1]):
            return []
        end = i + 1
        while end < len(layers) and self._joins(layers[end]):
            end += 1
        return layers[i:end]

    def augment(self, x, rng):
        chain = self._chain()
        if not chain:
            return x  # the warp layer before this one applied this one's warp too
        n, _, h, w = x.shape
        m = np.empty((n, 2, 3))
        for k, layer in enumerate(chain):  # input coordinate = m · (next's matrix · (output, 1), 1)
            _core.warp_matrix_forward(m, layer.draws(n, layer.generator()), layer.kind, h, w, k > 0)
        out = reuse(self._buffers, "out", x.shape, x.dtype)  # as Conv2D's output: a fresh 128 KB costs page faults
        _core.affine_transform_forward(out, np.ascontiguousarray(x), np.ascontiguousarray(m, dtype=x.dtype),
                                       INTERPOLATIONS[self.interpolation], FILL_MODES[self.fill_mode],
                                       self.fill_value)
        return out

    def matrices(self, n, h, w, rng):
        m = np.empty((n, 2, 3))
        _core.warp_matrix_forward(m, self.draws(n, rng), self.kind, h, w, False)
        return m


class RandomRotation(RandomAffine):
    """Rotates each image about its centre by factor·2π radians, factor drawn uniformly from [-f, f] (a number
    f) or [lower, upper] (a pair); a positive angle turns the image counter-clockwise, as
    keras.layers.RandomRotation."""

    kind = _core.WARP_ROTATION

    def __init__(self, factor: float | tuple[float, float], fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(fill_mode, interpolation, fill_value, seed, name, input_shape)
        self.lower, self.upper = factor_range(factor, "factor")

    def draws(self, n, rng):
        return uniform_rows(rng, ((self.lower, self.upper),), n)


class RandomZoom(RandomAffine):
    """Zooms each image about its centre: the height by 1 + a draw from [-f, f] or [lower, upper] (positive zooms
    out, negative in), the width likewise from width_factor, or by the height's draw when width_factor is None
    (the aspect ratio kept), as keras.layers.RandomZoom."""

    kind = _core.WARP_ZOOM

    def __init__(self, height_factor: float | tuple[float, float],
                 width_factor: float | tuple[float, float] | None = None, fill_mode: str = "reflect",
                 interpolation: str = "bilinear", seed: int | None = None, fill_value: float = 0.0,
                 name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(fill_mode, interpolation, fill_value, seed, name, input_shape)
        self.height_range = factor_range(height_factor, "height_factor")
        self.width_range = None if width_factor is None else factor_range(width_factor, "width_factor")
        for name_, r in (("height_factor", self.height_range), ("width_factor", self.width_range)):
            if r is not None and r[0] <= -1:
                raise ValueError(f"{name_} must be > -1 (a zoom of 1 + factor > 0), got {r[0]}")

    def draws(self, n, rng):
        return uniform_rows(rng, tuple(r for r in (self.height_range, self.width_range) if r is not None), n)


class RandomTranslation(RandomAffine):
    """Shifts each image by a draw from [-f, f] or [lower, upper] times its height (down when positive) and
    times its width (right when positive), as keras.layers.RandomTranslation; factors lie in [-1, 1]."""

    kind = _core.WARP_TRANSLATION

    def __init__(self, height_factor: float | tuple[float, float], width_factor: float | tuple[float, float],
                 fill_mode: str = "reflect", interpolation: str = "bilinear", seed: int | None = None,
                 fill_value: float = 0.0, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(fill_mode, interpolation, fill_value, seed, name, input_shape)
        self.height_range = factor_range(height_factor, "height_factor", bound=1)
        self.width_range = factor_range(width_factor, "width_factor", bound=1)

    def draws(self, n, rng):
        return uniform_rows(rng, (self.height_range, self.width_range), n)


class RandomFlip(RandomLayer):
    """Flips each image left-right ('horizontal'), upside down ('vertical'), or each way independently
    ('horizontal_and_vertical'), each with probability 1/2, as keras.layers.RandomFlip."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None, name: str | None = None,
                 input_shape: Shape | None = None) -> None:
        super().__init__(seed, name, input_shape)
        self.mode = check_choice(mode, "mode", self.MODES)
        self._flips = None

    def augment(self, x, rng):
        out = x.copy()
        self._flips = []
        for axis, kind in ((3, "horizontal"), (2, "vertical")):
            flip = rng.random(len(x)) < 0.5 if kind in self.mode else np.zeros(len(x), bool)
            out[flip] = np.flip(out[flip], axis=axis)
            self._flips.append((axis, flip))
        return out

    def transpose(self, dy):
        dx = dy.copy()
        for axis, flip in self._flips:  # a flip is its own inverse and its own transpose
            dx[flip] = np.flip(dx[flip], axis=axis)
        return dx


class RandomContrast(RandomLayer):
    """Scales each image's distance from its per-channel mean by a factor drawn from [1 - lower, 1 + upper]
    (a number f: lower = upper = f), then clips to value_range, as keras.layers.RandomContrast."""

    def __init__(self, factor: float | tuple[float, float], value_range: tuple[float, float] = (0, 255),
                 seed: int | None = None, name: str | None = None, input_shape: Shape | None = None) -> None:
        super().__init__(seed, name, input_shape)
        self.lower, self.upper = factor_range(factor, "factor", symmetric=False)
        if not 0 <= self.lower <= 1 or self.upper < 0:
            raise ValueError(f"factor must give 0 <= lower <= 1 and upper >= 0, got {factor!r}")
        low, high = factor_range(tuple(value_range), "value_range")
        self.value_range = (low, high)

    def augment(self, x, rng):
        factor = rng.uniform(1 - self.lower, 1 + self.upper, len(x)).astype(x.dtype)[:, None, None, None]
        mean = x.mean(axis=(2, 3), keepdims=True)
        return np.clip((x - mean) * factor + mean, *self.value_range).astype(x.dtype)
