"""Evaluation/inference preprocessing, derived from the model's saved config so it cannot drift.

NumPy + OpenCV only (no torch), so the ONNX path imports little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 face crops become network input."""

    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    in_chans: int = 3  # channels the network takes
    data_channels: int = 1  # channels of the training images: 1 = the model was trained on grayscale

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N,H,W,C) uint8 with C in {1,3} → the channel count the model was trained on."""
    if images.shape[3] == channels:
        return images
    if channels == 1:
        gray = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.clip(gray.round(), 0, 255).astype(np.uint8)[..., None]
    return np.repeat(images, 3, axis=3)


def resize_batch(images: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """Resize N same-sized (N, H, W, 1|3) images to (N, size, size, C), one OpenCV call per image.

    One call per image because OpenCV's area and cubic resizers take at most 4 channels when the
    scale is not an integer (stacking the batch along the channel axis fails for e.g. 256 → 240).
    """
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    interp = cv2.INTER_AREA if size < min(h, w) else INTERPOLATION[interpolation]
    out = np.empty((n, size, size, c), np.uint8)
    for i in range(n):
        out[i] = cv2.resize(images[i], (size, size), interpolation=interp).reshape(size, size, c)
    return out


def network_view(images: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """(N,H,W,C) uint8 → (N,S,S,C') uint8: what the network sees, before normalisation."""
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"expected (N, H, W, 1|3) uint8 images, got shape {images.shape}")
    x = match_channels(images, pp.data_channels)
    resize_to = round(pp.input_size / pp.crop_pct)
    x = resize_batch(x, resize_to, pp.interpolation)
    if resize_to != pp.input_size:
        top = (resize_to - pp.input_size) // 2
        x = x[:, top : top + pp.input_size, top : top + pp.input_size]
    return match_channels(x, 1) if pp.in_chans == 1 else x


def prepare(images: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """(N,H,W,C) uint8 faces → (N, in_chans, S, S) float32 normalised network input."""
    x = network_view(images, pp)
    # Normalising a 1-channel batch against 3-channel mean/std broadcasts it to 3 channels in one pass.
    scale = np.float32(1.0 / 255.0)
    mean = np.asarray(pp.mean, np.float32)
    std = np.asarray(pp.std, np.float32)
    x = (x.astype(np.float32) * scale - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
