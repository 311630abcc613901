"""Where a random layer (Dropout, the augmentation layers) draws from: its own generator when it was given a
seed, else its model's, so that `Sequential(seed=...)` makes a whole fit reproducible."""
import numpy as np

from .._validation import check_number


class RandomLayerMixin:
    """Keeps `seed` and `_rng` (saved and restored with the model, see saving.py)."""

    def _init_seed(self, seed):
        self.seed = None if seed is None else check_number(seed, "seed", low=0, integer=True)
        self._rng = None

    def generator(self) -> np.random.Generator:
        if self._rng is None and self.seed is not None:
            self._rng = np.random.default_rng(self.seed)
        if self._rng is not None:
            return self._rng
        if self.model is None or self.model._rng is None:
            raise ValueError(f"layer {self.name!r}: {type(self).__name__} needs seed= or to be part of a built model")
        return self.model._rng
