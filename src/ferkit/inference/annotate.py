"""Draw results onto a copy of an image: box, label + score, and a probability bar per class."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.fileio import atomic_output
from ferkit.inference.detect import as_hwc, to_bgr
from ferkit.inference.recognizer import FacePrediction

WRITABLE = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# Distinct, colour-blind-friendly RGB colours (Okabe-Ito), one per class index.
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (153, 153, 153)]  # fmt: skip
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float, color, thick: int) -> int:
    """Text on a dark filled background (readable on any image), above ``y`` when there is room, else
    below it. Returns the background's bottom edge."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    top = y - th - base - 2 if y - th - base - 2 >= 0 else y + thick
    cv2.rectangle(img, (x, top), (x + tw + 2, top + th + base + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, top + th + 1), FONT, scale, color, thick, cv2.LINE_AA)
    return top + th + base + 2


def _bars(img: np.ndarray, face: FacePrediction, x: int, y: int, unit: int, scale: float) -> None:
    """One short bar per class, its length the probability, with a 3-letter class name."""
    bar_len = 6 * unit
    for i, (name, p) in enumerate(face.probabilities.items()):
        top = y + i * (unit + 2)
        color = PALETTE[i % len(PALETTE)]
        cv2.rectangle(img, (x, top), (x + bar_len + 3 * unit, top + unit), (0, 0, 0), -1)
        cv2.putText(
            img, name[:3], (x + 1, top + unit - 1), FONT, scale * 0.6, (255, 255, 255), 1, cv2.LINE_AA
        )
        cv2.rectangle(
            img, (x + 3 * unit, top + 1), (x + 3 * unit + round(p * bar_len), top + unit - 1), color, -1
        )


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
    out = np.ascontiguousarray(np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img.copy())
    size = max(out.shape[:2])
    thick = max(1, round(size / 400))
    scale = max(0.35, size / 1200)
    unit = max(6, round(size / 90))  # bar height in pixels
    boxes = [f.box for f in faces]
    homeless: list[tuple[int, FacePrediction]] = []
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        names = list(face.probabilities)
        color = PALETTE[names.index(face.label) % len(PALETTE)] if face.label in names else PALETTE[0]
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        pw, ph = 9 * unit, len(names) * (unit + 2)
        spot = _bar_spot(face, boxes, out.shape[1], out.shape[0], pw, ph) if bars else None
        in_panel = bars and spot is None and panel
        number = f"{i + 1}: " if in_panel else ""  # matches "face N" in the side panel
        tag = f"{tags[i]} " if tags else ""
        _text(out, f"{number}{tag}{face.label} {face.score:.2f}", x, y, scale, color, thick)
        if spot is not None:
            _bars(out, face, *spot, unit, scale)
        elif in_panel:
            homeless.append((i, face))
    if homeless:
        out = _side_panel(out, homeless, unit, scale)
    return out


def _side_panel(
    out: np.ndarray, faces: list[tuple[int, FacePrediction]], unit: int, scale: float
) -> np.ndarray:
    """Widen the image with a dark panel holding "face N" + bars for faces with no room beside them."""
    block = (len(faces[0][1].probabilities) + 2) * (unit + 2)
    height = max(out.shape[0], block * len(faces) + unit)
    canvas = np.zeros((height, out.shape[1] + 10 * unit, 3), np.uint8)
    canvas[: out.shape[0], : out.shape[1]] = out
    for k, (i, face) in enumerate(faces):
        top = k * block + unit
        cv2.putText(canvas, f"face {i + 1}", (out.shape[1] + unit // 2, top + unit), FONT, scale * 0.7,
                    (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
        _bars(canvas, face, out.shape[1] + unit // 2, top + unit + 4, unit, scale)
    return canvas


def annotated_path(out_dir: str | os.PathLike, source: str | os.PathLike, used: set[str]) -> Path:
    """Where the annotated copy of ``source`` goes: same name (JPEG if OpenCV cannot write the format),
    with a numeric suffix when two inputs share a name."""
    src = Path(source)
    suffix = src.suffix.lower() if src.suffix.lower() in WRITABLE else ".jpg"
    name, n = f"{src.stem}{suffix}", 1
    while name in used:
        name, n = f"{src.stem}_{n}{suffix}", n + 1
    used.add(name)
    return Path(out_dir) / name


def write_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Encode an RGB image by the file's extension and write it atomically."""
    path = Path(path)
    data = encode_image(rgb, path.suffix, str(path))
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def encode_image(rgb: np.ndarray, suffix: str = ".png", what: str = "image") -> bytes:
    """An RGB (or gray) image encoded in the format of a file extension (``.png``, ``.jpg``, ...)."""
    ok, data = cv2.imencode(suffix, to_bgr(as_hwc(rgb)))
    if not ok:
        raise FerkitError(f"{what}: OpenCV cannot encode {suffix} images")
    return data.tobytes()
