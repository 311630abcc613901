"""Learning-rate schedules with Keras's names (keras.optimizers.schedules), also reachable as
cnn.optimizers.schedules. A schedule maps a step count to a learning rate; given to
cnn.callbacks.LearningRateScheduler it is called with the epoch (from 0), so its steps are epochs."""
from __future__ import annotations

import bisect
from collections.abc import Sequence

from ._validation import check_number

__all__ = ["PiecewiseConstantDecay"]


class PiecewiseConstantDecay:
    """values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i], and
    values[-1] after the last boundary, as keras.optimizers.schedules.PiecewiseConstantDecay.

    The lecture's schedule (LeCun et al.: 0.0005 for two epochs, 0.0002 for the next two, 0.0001 for three,
    0.00005 for four, then 0.00001), epochs counted from 0:
        LearningRateScheduler(PiecewiseConstantDecay([1, 3, 6, 10], [5e-4, 2e-4, 1e-4, 5e-5, 1e-5]))"""

    def __init__(self, boundaries: Sequence[float], values: Sequence[float], name: str | None = None) -> None:
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError(f"boundaries and values must be lists, got {type(boundaries).__name__} and "
                            f"{type(values).__name__}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values must have one more entry than boundaries, got {len(values)} values for "
                             f"{len(boundaries)} boundaries")
        self.boundaries = [check_number(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must increase, got {list(boundaries)}")
        self.values = [float(check_number(v, f"values[{i}]", low=0)) for i, v in enumerate(values)]
        self.name = name

    def __call__(self, step: float, lr: float | None = None) -> float:
        """The rate at `step`; `lr` (the current rate, which LearningRateScheduler passes) is not used."""
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}

    def __repr__(self):
        return f"PiecewiseConstantDecay(boundaries={self.boundaries}, values={self.values})"
