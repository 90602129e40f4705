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


def annotate(image: np.ndarray, faces: Sequence[FacePrediction], bars: bool = True) -> np.ndarray:
    """A uint8 RGB copy of ``image`` (RGB or gray) with every face drawn; the input is not modified."""
    img = as_hwc(image)
    out = np.ascontiguousarray(np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img.copy())
    size = max(out.shape[:2])
    thick = max(1, round(size / 400))
    scale = max(0.35, size / 1200)
    unit = max(6, round(size / 90))  # bar height in pixels
    for face in faces:
        x, y, w, h = face.box
        names = list(face.probabilities)
        color = PALETTE[names.index(face.label) % len(PALETTE)] if face.label in names else PALETTE[0]
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        label_bottom = _text(out, f"{face.label} {face.score:.2f}", x, y, scale, color, thick)
        if bars:
            panel = 9 * unit
            if x + w + 4 + panel <= out.shape[1]:  # right of the box
                _bars(out, face, x + w + 4, y, unit, scale)
            elif x - panel - 4 >= 0:  # left of it
                _bars(out, face, x - panel - 4, y, unit, scale)
            else:  # the face fills the width: inside, below the label
                _bars(out, face, x + thick + 1, max(label_bottom, y) + 2, unit, scale)
    return out


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
    ok, data = cv2.imencode(path.suffix, to_bgr(as_hwc(rgb)))
    if not ok:
        raise FerkitError(f"{path}: OpenCV cannot encode {path.suffix} images")
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.tobytes())
