"""Batched class probabilities for uint8 face images, with optional test-time augmentation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ferkit.models.preprocess import Preprocessing, prepare, tta_views

TTA = str  # one of ferkit.models.preprocess.TTA_MODES


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    images: np.ndarray | Callable[[np.ndarray], np.ndarray],
    pp: Preprocessing,
    n: int | None = None,
    batch_size: int = 256,
    tta: TTA = "none",
    device: torch.device | str = "cpu",
    channels_last: bool = True,
) -> np.ndarray:
    """(N, classes) softmax probabilities. ``images`` is an (N,H,W,C) uint8 array, or a function
    returning the images at given indices (so memmapped datasets are read one batch at a time)."""
    take = images if callable(images) else (lambda idx: images[idx])
    total = n if n is not None else len(images)  # type: ignore[arg-type]
    model.eval()
    out = []
    for start in range(0, total, batch_size):
        idx = np.arange(start, min(start + batch_size, total))
        probs = []
        for view in tta_views(prepare(np.asarray(take(idx)), pp), tta):
            x = torch.from_numpy(np.ascontiguousarray(view)).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            probs.append(torch.softmax(model(x).float(), dim=1))
        out.append(torch.stack(probs).mean(0).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
