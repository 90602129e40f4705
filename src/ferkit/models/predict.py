"""Batched class probabilities for uint8 face images, with optional test-time augmentation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn

from ferkit.models.preprocess import Preprocessing, prepare

TTA = Literal["none", "flip", "tencrop"]


def _views(x: torch.Tensor, tta: TTA, size: int) -> list[torch.Tensor]:
    """The network inputs whose softmax outputs are averaged for one TTA mode."""
    if tta == "none":
        return [x]
    if tta == "flip":
        return [x, x.flip(3)]
    # tencrop: four corners + centre of a 0.875 crop, resized back, and their mirrors
    crop = round(size * 0.875)
    off = size - crop
    views = []
    for top, left in ((0, 0), (0, off), (off, 0), (off, off), (off // 2, off // 2)):
        v = x[:, :, top : top + crop, left : left + crop]
        v = nn.functional.interpolate(v, size=(size, size), mode="bilinear", align_corners=False)
        views += [v, v.flip(3)]
    return views


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
        x = torch.from_numpy(prepare(np.asarray(take(idx)), pp)).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        probs = [torch.softmax(model(v).float(), dim=1) for v in _views(x, tta, pp.input_size)]
        out.append(torch.stack(probs).mean(0).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
