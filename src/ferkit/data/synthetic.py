"""A small built-in synthetic face dataset: cartoon faces whose mouth/brows/eyes encode the class.

Learnable in seconds, so the demo and the tests exercise real training without downloads.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("angry", "happy", "neutral", "sad", "surprise")


def draw_face(cls: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """One grayscale face; geometry jittered so no two images are the same."""
    s = size / 48.0
    img = np.full((size, size), rng.integers(20, 90), dtype=np.uint8)
    cx, cy = size / 2 + rng.normal(0, 1.5 * s), size / 2 + rng.normal(0, 1.5 * s)

    def p(x: float, y: float) -> tuple[int, int]:
        return round(cx + x * s), round(cy + y * s)

    cv2.ellipse(img, p(0, 0), (round(17 * s), round(21 * s)), 0, 0, 360, int(rng.integers(150, 230)), -1)
    eye_r = round((3.5 if cls == "surprise" else 2.2) * s)
    for ex in (-7, 7):
        cv2.circle(img, p(ex, -5), eye_r, 30, -1)
    brow = {"angry": 4, "sad": -3}.get(cls, 0)
    cv2.line(img, p(-11, -11 - brow), p(-4, -11 + brow), 40, max(1, round(1.5 * s)))
    cv2.line(img, p(4, -11 + brow), p(11, -11 - brow), 40, max(1, round(1.5 * s)))
    thick = max(1, round(2 * s))
    if cls == "happy":
        cv2.ellipse(img, p(0, 7), (round(8 * s), round(5 * s)), 0, 10, 170, 30, thick)
    elif cls == "sad":
        cv2.ellipse(img, p(0, 14), (round(8 * s), round(5 * s)), 0, 190, 350, 30, thick)
    elif cls == "surprise":
        cv2.ellipse(img, p(0, 10), (round(4 * s), round(6 * s)), 0, 0, 360, 30, -1)
    else:  # angry and neutral: straight mouth (angry differs by the brows)
        cv2.line(img, p(-7, 10), p(7, 10), 30, thick)
    noise = rng.normal(0, 8, img.shape)
    return np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def make_synthetic_folders(
    root: Path, per_class: int = 40, test_per_class: int = 10, size: int = 48, seed: int = 0
) -> Path:
    """Write a Kaggle-style ``root/{train,test}/<class>/*.png`` tree and return ``root``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for cls in CLASSES:
            folder = Path(root) / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{cls}_{i:04d}.png"), draw_face(cls, rng, size))
    return Path(root)
