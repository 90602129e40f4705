"""The original FER2013 release: a CSV with columns ``emotion,pixels,Usage``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError

# Label ids of the CSV release (note: not the alphabetical order of the folder release).
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_TO_SPLIT = {"training": "train", "publictest": "val", "privatetest": "test"}
SPLIT_TO_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest", "all": "Training"}
SYNONYMS = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
}
SIDE = 48


@dataclass
class CsvData:
    """Rows that parsed, plus the ones that did not (``"file:line"``, reason)."""

    pixels: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray
    splits: list[str]
    rows: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _parse_row(row: dict[str, str], has_usage: bool) -> tuple[np.ndarray, int, str]:
    """Parse one record; raise ValueError with a short reason when it is malformed."""
    try:
        label = int(row["emotion"])
    except (TypeError, ValueError):
        raise ValueError(f"emotion {row['emotion']!r} is not an integer") from None
    if not 0 <= label < len(FER2013_CLASSES):
        raise ValueError(f"emotion {label} is outside 0..6")
    tokens = (row["pixels"] or "").split()
    if len(tokens) != SIDE * SIDE:
        raise ValueError(f"pixels has {len(tokens)} values, expected {SIDE * SIDE}")
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise ValueError(f"pixels contains a non-numeric value {bad!r}") from None
    if values.min() < 0 or values.max() > 255:
        raise ValueError("pixels has values outside 0..255")
    split = "all"
    if has_usage:
        usage = (row["Usage"] or "").strip()
        split = USAGE_TO_SPLIT.get(usage.lower(), "")
        if not split:
            raise ValueError(f"Usage {usage!r} is not Training, PublicTest or PrivateTest")
    return values.astype(np.uint8).reshape(SIDE, SIDE), label, split


def parse_fer_csv(text: str, name: str, strict: bool = False) -> CsvData:
    """Parse the CSV text; bad rows are skipped with their line number (or raise when ``strict``)."""
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    missing = [c for c in ("emotion", "pixels") if c not in fields]
    if missing:
        raise FerkitError(f"{name}: not a FER2013 CSV: missing column(s) {missing}; header is {fields}")
    has_usage = "Usage" in fields
    pixels, labels, splits, rows, skipped = [], [], [], [], []
    for row in reader:
        where = f"{name}:{reader.line_num}"
        try:
            img, label, split = _parse_row(row, has_usage)
        except ValueError as exc:
            if strict:
                raise FerkitError(f"{where}: {exc}") from None
            skipped.append((where, str(exc)))
            continue
        pixels.append(img)
        labels.append(label)
        splits.append(split)
        rows.append(where)
    if not pixels:
        raise FerkitError(f"{name}: no valid rows")
    return CsvData(np.stack(pixels), np.array(labels, dtype=np.int64), splits, rows, skipped)


def fer_label_ids(class_names: Iterable[str]) -> list[int]:
    """FER2013 CSV label id for each class name (synonyms such as 'happiness' accepted)."""
    ids = []
    for name in class_names:
        key = SYNONYMS.get(name.lower(), name.lower())
        if key not in FER2013_CLASSES:
            raise FerkitError(
                f"class {name!r} has no FER2013 label id; the CSV format holds only {list(FER2013_CLASSES)}"
            )
        ids.append(FER2013_CLASSES.index(key))
    return ids


def write_fer_csv(path: Path, gray48: np.ndarray, emotion: np.ndarray, splits: Iterable[str]) -> None:
    """Write rows in the original format (48x48 grayscale pixels, FER2013 label ids, Usage)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels", "Usage"])
        for img, label, split in zip(gray48, emotion, splits, strict=True):
            writer.writerow([int(label), " ".join(map(str, img.reshape(-1).tolist())), SPLIT_TO_USAGE[split]])
