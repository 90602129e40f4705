"""Photo-like synthetic datasets for the 'own photo dataset' path: colour or gray, odd and mixed sizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ferkit.data.synthetic import CLASSES, draw_face


def photo(cls: str, rng: np.random.Generator, width: int, height: int, color: bool) -> np.ndarray:
    """A cartoon face of class ``cls`` centred on a ``width`` x ``height`` canvas (BGR or gray)."""
    side = min(width, height)
    face = draw_face(cls, rng, side)
    canvas = np.full((height, width), int(face[0, 0]), np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    canvas[top : top + side, left : left + side] = face
    if not color:
        return canvas
    tint = rng.uniform(0.6, 1.0, 3)
    return np.clip(canvas[..., None] * tint, 0, 255).astype(np.uint8)


def make_photo_pool(
    root: Path,
    sizes: Sequence[tuple[int, int]],
    per_class: int = 6,
    color: bool = True,
    classes: Sequence[str] = CLASSES,
    seed: int = 0,
) -> Path:
    """``root/<class>/<class>_<i>.jpg`` (one pool, no split folders); image sizes cycle through ``sizes``."""
    rng = np.random.default_rng(seed)
    k = 0
    for cls in classes:
        folder = Path(root) / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = sizes[k % len(sizes)]
            k += 1
            cv2.imwrite(str(folder / f"{cls}_{i:03d}.jpg"), photo(cls, rng, w, h, color))
    return Path(root)
