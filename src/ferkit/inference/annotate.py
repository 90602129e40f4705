"""Draw results onto a copy of an image: box, label + score, and a probability bar per class."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ferkit.data.imageops import ENCODERS, encode
from ferkit.fileio import atomic_output
from ferkit.inference.detect import as_hwc
from ferkit.inference.recognizer import FacePrediction

# Distinct, colour-blind-friendly RGB colours (Okabe-Ito), one per class index.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (153, 153, 153)]  # fmt: skip


@lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font at ``px`` pixels (no font files to ship or find)."""
    return ImageFont.load_default(size=max(8, px))


def _text(draw: ImageDraw.ImageDraw, text: str, x: int, y: int, px: int, color) -> int:
    """Text on a dark filled background (readable on any image), above ``y`` when there is room, else
    below it. Returns the background's bottom edge."""
    font = _font(px)
    _, _, tw, th = draw.textbbox((0, 0), text, font=font)
    top = y - th - 3 if y - th - 3 >= 0 else y + 1
    draw.rectangle((x, top, x + tw + 2, top + th + 2), fill=(0, 0, 0))
    draw.text((x + 1, top + 1), text, fill=color, font=font)
    return top + th + 2


def _bars(draw: ImageDraw.ImageDraw, face: FacePrediction, x: int, y: int, unit: int) -> None:
    """One short bar per class, its length the probability, with a 3-letter class name."""
    bar_len = 6 * unit
    for i, (name, p) in enumerate(face.probabilities.items()):
        top = y + i * (unit + 2)
        draw.rectangle((x, top, x + bar_len + 3 * unit, top + unit), fill=(0, 0, 0))
        draw.text((x + 1, top), name[:3], fill=(255, 255, 255), font=_font(unit))
        if round(p * bar_len) > 0:
            right = x + 3 * unit + round(p * bar_len)
            draw.rectangle((x + 3 * unit, top + 1, right, top + unit - 1), fill=PALETTE[i % len(PALETTE)])


def _overlaps(rect: tuple[int, int, int, int], boxes: Sequence[tuple[int, int, int, int]]) -> bool:
    """Whether ``rect`` (x0, y0, x1, y1) touches any face box (x, y, w, h)."""
    x0, y0, x1, y1 = rect
    return any(x0 < x + w and x < x1 and y0 < y + h and y < y1 for x, y, w, h in boxes)


def _bar_spot(
    face: FacePrediction, boxes, width: int, height: int, pw: int, ph: int
) -> tuple[int, int] | None:
    """Top-left corner for a ``pw`` x ``ph`` bar panel beside the face (right, left, below, above)
    that stays inside the image and covers no face; None when there is no such place."""
    x, y, w, h = face.box
    top = min(max(y, 0), max(height - ph, 0))
    left = min(max(x, 0), max(width - pw, 0))
    for px, py in ((x + w + 4, top), (x - pw - 4, top), (left, y + h + 4), (left, y - ph - 4)):
        rect = (px, py, px + pw, py + ph)
        if px >= 0 and py >= 0 and px + pw <= width and py + ph <= height and not _overlaps(rect, boxes):
            return px, py
    return None


def annotate(
    image: np.ndarray,
    faces: Sequence[FacePrediction],
    bars: bool = True,
    panel: bool = True,
    tags: Sequence[str] | None = None,
) -> np.ndarray:
    """A uint8 RGB copy of ``image`` (RGB or gray) with every face drawn; the input is not modified.

    Probability bars never cover a face: they go beside the face's box where there is room, else
    into a side panel added to the right of the image (``panel=False``, e.g. for video frames whose
    size is fixed: left out for that face). ``tags`` (one per face, e.g. a video's track ids) are
    written before each face's label.
    """
    img = as_hwc(image)
    out = Image.fromarray(np.ascontiguousarray(np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img))
    draw = ImageDraw.Draw(out)
    size = max(out.size)
    thick = max(1, round(size / 400))
    px = max(10, round(size / 45))  # label text height in pixels
    unit = max(6, round(size / 90))  # bar height in pixels
    boxes = [f.box for f in faces]
    homeless: list[tuple[int, FacePrediction]] = []
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        names = list(face.probabilities)
        color = PALETTE[names.index(face.label) % len(PALETTE)] if face.label in names else PALETTE[0]
        draw.rectangle((x, y, x + w, y + h), outline=color, width=thick)
        pw, ph = 9 * unit, len(names) * (unit + 2)
        spot = _bar_spot(face, boxes, out.width, out.height, pw, ph) if bars else None
        in_panel = bars and spot is None and panel
        number = f"{i + 1}: " if in_panel else ""  # matches "face N" in the side panel
        tag = f"{tags[i]} " if tags else ""
        _text(draw, f"{number}{tag}{face.label} {face.score:.2f}", x, y, px, color)
        if spot is not None:
            _bars(draw, face, *spot, unit)
        elif in_panel:
            homeless.append((i, face))
    if homeless:
        out = _side_panel(out, homeless, unit)
    return np.asarray(out)


def _side_panel(out: Image.Image, faces: list[tuple[int, FacePrediction]], unit: int) -> Image.Image:
    """Widen the image with a dark panel holding "face N" + bars for faces with no room beside them."""
    block = (len(faces[0][1].probabilities) + 2) * (unit + 2)
    canvas = Image.new("RGB", (out.width + 10 * unit, max(out.height, block * len(faces) + unit)))
    canvas.paste(out, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, (i, face) in enumerate(faces):
        top = k * block + unit
        draw.text((out.width + unit // 2, top), f"face {i + 1}", fill=(255, 255, 255), font=_font(unit + 2))
        _bars(draw, face, out.width + unit // 2, top + unit + 4, unit)
    return canvas


def annotated_path(out_dir: str | os.PathLike, source: str | os.PathLike, used: set[str]) -> Path:
    """Where the annotated copy of ``source`` goes: same name (JPEG if it is not a format ferkit writes),
    with a numeric suffix when two inputs share a name."""
    src = Path(source)
    suffix = src.suffix.lower() if src.suffix.lower() in ENCODERS else ".jpg"
    name, n = f"{src.stem}{suffix}", 1
    while name in used:
        name, n = f"{src.stem}_{n}{suffix}", n + 1
    used.add(name)
    return Path(out_dir) / name


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Encode an RGB image by the file's extension and write it atomically."""
    path = Path(path)
    data = encode(rgb, path.suffix, str(path))
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
