"""Evaluation/inference preprocessing, derived from the model's saved config so it cannot drift.

NumPy only (no torch, no OpenCV), so the ONNX path imports little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ferkit.data.imageops import resize, to_gray, zoom
from ferkit.errors import FerkitError

# Test-time augmentation: each mode is a set of views of the network input whose softmax outputs are
# averaged. shift: the centre and four moves of TTA_SHIFT of the side; scale: zoomed out and in by
# TTA_SCALES; flip: every view and its mirror; tencrop: the corners and centre of a 0.875 crop, and
# their mirrors. Views are cut from the prepared batch, the border reflected as training fills it.
TTA_MODES = ("none", "flip", "shift", "shift+flip", "scale+flip", "shift+scale+flip", "tencrop")
TTA_SHIFT = 2 / 48  # two pixels of a 48-px FER2013 face
TTA_SCALES = (0.9, 1.1)


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
    tta: str | None = None  # the model's own test-time augmentation (TTA_MODES; None: not stated)

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
        return to_gray(images)[..., None]
    return np.repeat(images, 3, axis=3)


def resize_batch(images: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """Resize N same-sized (N, H, W, 1|3) images to (N, size, size, C): area when shrinking, the
    model's ``interpolation`` when enlarging."""
    return resize(images, size, size, interpolation, axes=(1, 2))


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


def check_tta(mode: str) -> str:
    if mode not in TTA_MODES:
        raise FerkitError(f"tta must be one of {', '.join(TTA_MODES)}; not {mode!r}")
    return mode


def tta_views(batch: np.ndarray, mode: str) -> list[np.ndarray]:
    """(N, C, S, S) network input → the batches one TTA mode averages (the first is ``batch``)."""
    check_tta(mode)
    size = batch.shape[-1]
    if mode == "tencrop":
        crop, views = round(size * 0.875), []
        off = size - crop
        for top, left in ((0, 0), (0, off), (off, 0), (off, off), (off // 2, off // 2)):
            views.append(_resized(batch[:, :, top : top + crop, left : left + crop], size))
        return [v for view in views for v in (view, view[..., ::-1])]
    parts = set(mode.split("+"))
    views = [batch]
    if "shift" in parts:
        d = max(1, round(size * TTA_SHIFT))
        padded = np.pad(batch, ((0, 0), (0, 0), (d, d), (d, d)), mode="symmetric")
        moves = ((d, 0), (-d, 0), (0, d), (0, -d))  # content moves right, left, down, up
        views += [padded[:, :, d - dy : d - dy + size, d - dx : d - dx + size] for dx, dy in moves]
    if "scale" in parts:
        views += [_zoomed(batch, f) for f in TTA_SCALES]
    if "flip" in parts:
        views += [v[..., ::-1] for v in views]
    return views


def _resized(batch: np.ndarray, size: int) -> np.ndarray:
    return resize(batch, size, size, axes=(2, 3))


def _zoomed(batch: np.ndarray, factor: float) -> np.ndarray:
    """Zoom about the centre (``factor`` > 1: the face larger), border reflected."""
    return zoom(batch, factor, axes=(2, 3))
