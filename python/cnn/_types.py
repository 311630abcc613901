"""The names the public API's type hints use. Only type checkers import this module (under TYPE_CHECKING);
the hints are strings at run time (`from __future__ import annotations`), so they cost nothing on import."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Callable, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["ArrayLike", "DTypeLike", "PathLike", "Shape", "IntPair", "Initializer", "Verbose"]

PathLike = Union[str, "os.PathLike[str]"]
Shape = Sequence[int]  # an array's shape without the batch axis
IntPair = Union[int, tuple[int, int]]  # one int for both spatial axes, or (height, width)
Initializer = Union[str, Callable[[tuple[int, ...], np.random.Generator, DTypeLike], np.ndarray]]
Verbose = Union[int, str]  # 0, 1, 2 or "auto"
