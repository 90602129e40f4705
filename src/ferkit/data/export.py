"""Convert between the FER2013 CSV release and Kaggle-style image folders."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.data.fer2013_csv import SIDE, fer_label_ids, write_fer_csv
from ferkit.data.imageops import encode, resize, to_gray

SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "test", "all": "train"}


def _stem(source: str) -> str:
    """A file name derived from where the item came from ("fer.csv:12" → "fer_12")."""
    base = Path(source.replace(":", "_")).stem
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base)


def export_folders(ds: FaceDataset, out: Path, fmt: str = "png") -> int:
    """Write ``<out>/<split>/<class>/<name>.<fmt>``; returns the number of images written.

    Written into a temporary sibling folder and renamed at the end, so an interrupted export
    never leaves a half-filled tree that looks complete.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: output folder exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for i in range(len(ds)):
            folder = tmp / SPLIT_FOLDERS.get(ds.splits[i], ds.splits[i]) / ds.class_names[ds.labels[i]]
            folder.mkdir(parents=True, exist_ok=True)
            img = ds.take([i])[0]
            name = f"{_stem(ds.sources[i])}_{i}.{fmt}"
            (folder / name).write_bytes(encode(img, f".{fmt}", str(folder / name)))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(ds)


def export_csv(ds: FaceDataset, out: Path) -> int:
    """Write the FER2013 CSV format (48x48 grayscale, FER2013 label ids, Usage column)."""
    ids = np.array(fer_label_ids(ds.class_names))
    gray = np.empty((len(ds), SIDE, SIDE), dtype=np.uint8)
    for start in range(0, len(ds), 2048):
        batch = ds.take(np.arange(start, min(start + 2048, len(ds))))
        for k, img in enumerate(batch):
            g = img[..., 0] if img.shape[2] == 1 else to_gray(img)
            gray[start + k] = resize(g, SIDE, SIDE)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    write_fer_csv(tmp, gray, ids[ds.labels], ds.splits.tolist())
    os.replace(tmp, out)
    return len(ds)
