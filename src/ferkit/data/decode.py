"""Decode one image file's bytes into a fixed-size uint8 array, or say why it cannot be used.

Runs inside worker processes, so it imports only PIL, pillow-heif and NumPy.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ferkit.data.imageops import resize, to_gray

Color = Literal["auto", "gray", "rgb"]

_HEIF_READY = False


def register_heif() -> None:
    """Teach PIL to open HEIC/HEIF (phone photos); done lazily once per process."""
    global _HEIF_READY
    if not _HEIF_READY:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _HEIF_READY = True


@dataclass
class Decoded:
    """One decoded image (``pixels`` is None when it was skipped, and ``reason`` says why)."""

    pixels: np.ndarray | None
    reason: str | None = None
    width: int = 0
    height: int = 0
    mode: str = ""
    digest: bytes = b""  # hash of the full-resolution decoded pixels: finds exact duplicates
    is_gray: bool = True


def to_array(im: Image.Image, color: Color) -> tuple[np.ndarray, bool]:
    """Convert any PIL mode to HxW (gray) or HxWx3 (colour) uint8, and tell if it is grayscale.

    16/32-bit images are scaled to 8 bits rather than clipped; alpha is composited on white.
    """
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8)
        return (gray if color != "rgb" else np.repeat(gray[..., None], 3, axis=2)), True
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
        mode = "LA" if mode == "LA" else "RGB"
    if mode in ("L", "1", "LA"):
        gray = np.asarray(im.convert("L"))
        return (gray if color != "rgb" else np.repeat(gray[..., None], 3, axis=2)), True
    rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))  # convert() would copy an RGB image
    is_gray = _equal_channels(rgb[::8, ::8]) and _equal_channels(rgb)  # a colour photo fails on the sample
    if color == "gray":
        return to_gray(rgb), is_gray
    return rgb, is_gray


def _equal_channels(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def decode_full(data: bytes, color: Color, formats: Sequence[str] | None = None) -> Decoded:
    """Decode at full resolution with EXIF orientation applied: HxW (gray) or HxWx3 uint8.

    ``formats`` (PIL format names) restricts the decoders tried, e.g. for untrusted uploads.
    """
    if not data:
        return Decoded(None, "empty file (0 bytes)")
    register_heif()
    try:
        with Image.open(io.BytesIO(data), formats=formats) as im:
            im.seek(0)  # first frame of animated GIF/WebP/TIFF
            im.load()
            width, height, mode = im.width, im.height, im.mode
            ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of a 12 MP photo
            arr, is_gray = to_array(im, color)
    except UnidentifiedImageError:
        return Decoded(None, "not an image, or a format PIL/pillow-heif cannot read")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return Decoded(None, f"corrupt or truncated image: {exc}")
    return Decoded(arr, None, width, height, mode, b"", is_gray)


def decode_bytes(data: bytes, size: int, color: Color) -> Decoded:
    """Decode, apply EXIF orientation, convert mode, hash, and resize one image."""
    full = decode_full(data, color)
    if full.pixels is None:
        return full
    arr = full.pixels
    if color == "auto" and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    digest = hashlib.blake2b(arr.tobytes() + str(arr.shape).encode(), digest_size=16).digest()
    pixels = resize(arr, size, size)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return Decoded(pixels, None, full.width, full.height, full.mode, digest, full.is_gray)


def decode_chunk(chunk: list[bytes], size: int, color: Color) -> list[Decoded]:
    """Worker entry point: decode a list of files (one inter-process round trip per chunk)."""
    return [decode_bytes(data, size, color) for data in chunk]


def header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file header only (cheap), or None when unreadable."""
    register_heif()
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # any unreadable header simply does not vote on the size
        return None
