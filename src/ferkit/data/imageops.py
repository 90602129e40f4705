"""Resizing, zooming, grayscale and encoding of image arrays, in NumPy and Pillow (no OpenCV).

Why not OpenCV: it is 161 MB of the install, which the light install cannot afford (issue 22), and
ferkit's shipped models were trained on OpenCV's resizers. The resizers here compute the same
interpolation as ``cv2.resize`` — area averaging with exact pixel overlaps when shrinking, bilinear
or bicubic (a = -0.75) with half-pixel centres and replicated borders otherwise — as separable taps
in float32: area results equal OpenCV's, bilinear and bicubic ones are within one grey level
(OpenCV uses fixed-point weights for uint8). Tested against OpenCV in tests/test_imageops.py.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from ferkit.errors import FerkitError

ENLARGE = ("bilinear", "bicubic")  # how an axis that grows is resampled; one that shrinks is averaged
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma, as OpenCV and PIL
ENCODERS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
            ".tif": "TIFF", ".tiff": "TIFF"}  # fmt: skip
JPEG_QUALITY = 95  # OpenCV's default, which ferkit's earlier JPEGs used


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB → (...) uint8 luma, rounded to the nearest level."""
    gray = rgb.astype(np.float32) @ GRAY_WEIGHTS
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def resize(
    image: np.ndarray, width: int, height: int, enlarge: str = "bilinear", axes: tuple[int, int] = (0, 1)
) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) uint8 or float32 image to (height, width[, C]), or a whole batch.

    Each axis is resampled on its own: averaged over exact pixel overlaps where it shrinks (no
    aliasing, as ``cv2.INTER_AREA``), interpolated by ``enlarge`` where it grows. uint8 is rounded.
    Every output pixel is computed alone, so a batch gives exactly what its images give one by one.

    Args:
        image: the pixels; not modified (returned as is when the size is already right).
        width, height: the new size in pixels.
        enlarge: ``"bilinear"`` or ``"bicubic"`` (the model's ``interpolation``).
        axes: the (rows, columns) axes: ``(1, 2)`` for an (N, H, W, C) batch, ``(2, 3)`` for (N, C, H, W).

    Returns:
        The resized image, same dtype and other axes.
    """
    if enlarge not in ENLARGE:
        raise FerkitError(f"interpolation must be one of {', '.join(ENLARGE)}; not {enlarge!r}")
    if width < 1 or height < 1:
        raise FerkitError(f"cannot resize to {width}x{height}: sides must be at least 1 pixel")
    rows, cols = axes
    out = image
    for axis, target in ((cols, width), (rows, height)):
        source = out.shape[axis]
        if source == target:
            continue
        if target < source:
            idx, w = _area_taps(source, target)
        else:
            idx, w = _kernel_taps(source, target, enlarge, source / target, 0.5 * source / target - 0.5)
        out = _apply(out, axis, idx, w)
    return image if out is image else _like(out, image.dtype)


def zoom(image: np.ndarray, factor: float, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Zoom square images about their centre (``factor`` > 1: larger), bilinearly, the border
    reflected (``cv2.warpAffine`` with ``BORDER_REFLECT``, as training's affine augmentation).
    ``axes`` are the (rows, columns) axes, as for `resize`."""
    rows, cols = axes
    size = image.shape[rows]
    c = (size - 1) / 2
    idx, w = _kernel_taps(size, size, "bilinear", 1 / factor, c - c / factor, border="reflect")
    return _like(_apply(_apply(image, cols, idx, w), rows, idx, w), image.dtype)


def encode(rgb: np.ndarray, suffix: str, what: str = "image") -> bytes:
    """An (H, W[, 1|3]) uint8 image encoded in the format of a file extension (``.png``, ``.jpg``...)."""
    fmt = ENCODERS.get(suffix.lower())
    if fmt is None:
        raise FerkitError(
            f"{what}: cannot write {suffix or 'extensionless'} images; use {', '.join(ENCODERS)}"
        )
    arr = rgb[..., 0] if rgb.ndim == 3 and rgb.shape[2] == 1 else rgb
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt, **options)
    return buf.getvalue()


def _like(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(dtype, copy=False)


def _apply(image: np.ndarray, axis: int, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted sum of ``idx.shape[1]`` gathered taps along ``axis`` (one tap at a time: small memory;
    the taps are multiplied in place, which halves the time on a 12 MP photo)."""
    shape = [1] * image.ndim
    shape[axis] = -1
    out = np.zeros((*image.shape[:axis], len(idx), *image.shape[axis + 1 :]), np.float32)
    tap = np.empty_like(out)
    for k in range(idx.shape[1]):
        np.multiply(np.take(image, idx[:, k], axis=axis), w[:, k].reshape(shape), out=tap)
        out += tap
    return out


@lru_cache(maxsize=256)
def _area_taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Source pixels under each target pixel and the share of it each covers (OpenCV's INTER_AREA)."""
    scale = source / target
    start = np.arange(target) * scale
    idx = np.floor(start).astype(np.int64)[:, None] + np.arange(int(np.ceil(scale)) + 1)[None]
    cover = np.clip(np.minimum(idx + 1, start[:, None] + scale) - np.maximum(idx, start[:, None]), 0, None)
    used = cover.any(axis=0)  # an integer scale never needs the last tap: skip it (a third of 2x's work)
    return np.clip(idx[:, used], 0, source - 1), (cover[:, used] / scale).astype(np.float32)


@lru_cache(maxsize=256)
def _kernel_taps(
    source: int, target: int, kind: str, step: float, offset: float, border: str = "replicate"
) -> tuple[np.ndarray, np.ndarray]:
    """Taps of target pixel j at source position ``j * step + offset`` (pixel-centre coordinates)."""
    x = np.arange(target) * step + offset
    base = np.floor(x)
    idx = base[:, None] + (np.arange(2) if kind == "bilinear" else np.arange(-1, 3))[None]
    d = np.abs(x[:, None] - idx)
    if kind == "bilinear":
        w = 1 - d
    else:
        a = -0.75  # OpenCV's bicubic
        w = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a)
    idx = idx.astype(np.int64)
    if border == "reflect":  # fedcba|abcdefgh|hgfedcb
        period = 2 * source
        idx = np.mod(idx, period)
        idx = np.where(idx >= source, period - 1 - idx, idx)
    return np.clip(idx, 0, source - 1), w.astype(np.float32)
