"""Contact sheets: one PNG per duplicate group, so a user can look before dropping anything."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.data.imageops import encode, resize
from ferkit.data.integrity import DuplicateGroup
from ferkit.fileio import atomic_output

TILE = 160  # thumbnail side in pixels
CAPTION = 34  # caption strip under each thumbnail
COLUMNS = 6


def contact_sheet(ds: FaceDataset, group: DuplicateGroup, title: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB sheet: every member's thumbnail with its split, label and file name."""
    n = len(group.index)
    cols = min(COLUMNS, n)
    rows = -(-n // cols)
    sheet = np.full((28 + rows * (TILE + CAPTION), cols * TILE, 3), 255, np.uint8)
    cv2.putText(sheet, title, (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    images = ds.take(np.asarray(group.index))
    for k, img in enumerate(images):
        rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
        thumb = resize(rgb, TILE - 4, TILE - 4)
        top, left = 28 + (k // cols) * (TILE + CAPTION), (k % cols) * TILE
        sheet[top + 2 : top + TILE - 2, left + 2 : left + TILE - 2] = thumb
        color = (200, 0, 0) if group.conflicting else (0, 0, 0)
        lines = (f"{group.splits[k]} / {group.labels[k]}", Path(group.sources[k]).name[-24:])
        for line_no, text in enumerate(lines):
            cv2.putText(sheet, text, (left + 3, top + TILE + 12 + 14 * line_no), cv2.FONT_HERSHEY_SIMPLEX,
                        0.38, color, 1, cv2.LINE_AA)  # fmt: skip
    return sheet


def write_contact_sheets(
    ds: FaceDataset, groups: list[DuplicateGroup], out_dir: str | os.PathLike, prefix: str, limit: int = 500
) -> list[Path]:
    """``{prefix}_NNNN.png`` per group (conflicting and cross-split groups first), at most ``limit``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranked = sorted(groups, key=lambda g: (not g.conflicting, not g.cross_split, -len(g.index)))[:limit]
    paths = []
    for k, g in enumerate(ranked):
        flags = ", ".join(
            f for f, on in (("conflicting labels", g.conflicting), ("across splits", g.cross_split)) if on
        )
        sheet = contact_sheet(
            ds, g, f"{prefix} group {k + 1}: {len(g.index)} files" + (f" ({flags})" if flags else "")
        )
        path = out / f"{prefix}_{k + 1:04d}.png"
        with atomic_output(path) as tmp:
            tmp.write_bytes(encode(sheet, ".png", str(path)))
        paths.append(path)
    return paths
