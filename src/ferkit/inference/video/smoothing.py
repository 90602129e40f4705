"""Per-track smoothing of the class probabilities over time."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class Smoother:
    """Per-track exponential moving average of probabilities with time constant ``tau`` seconds:
    a new frame weighs ``1 - exp(-dt / tau)``, so the result does not depend on the frame rate."""

    def __init__(self, tau: float):
        self.tau = tau
        self._state: dict[int, tuple[float, np.ndarray]] = {}

    def __call__(self, track: int, time_s: float, probs: np.ndarray) -> np.ndarray:
        last = self._state.get(track)
        if last is None:
            smoothed = probs
        else:
            weight = 1 - math.exp(-max(time_s - last[0], 0.0) / self.tau)
            smoothed = last[1] + weight * (probs - last[1])
        self._state[track] = (time_s, smoothed)
        return smoothed

    def forget(self, tracks: Sequence[int]) -> None:
        for t in tracks:
            self._state.pop(t, None)
