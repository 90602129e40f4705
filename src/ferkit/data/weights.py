"""Class weights for imbalanced data (FER2013's 'disgust' is 16x rarer than 'happy')."""

from __future__ import annotations

import numpy as np


def balanced_class_weights(labels: np.ndarray, num_classes: int, clip: float | None = None) -> list[float]:
    """Inverse-frequency weights n / (C * count_c), as scikit-learn's "balanced", optionally clipped.

    Paper 002 clips at 4.0 so a tiny class cannot dominate the loss. Classes absent from
    ``labels`` get weight 0 (they contribute no loss anyway).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    if clip is not None:
        weights = np.minimum(weights, clip)
    return [round(float(w), 6) for w in weights]
