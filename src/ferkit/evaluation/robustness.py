"""Accuracy of a model under the controlled shifts of `ferkit.evaluation.corruptions`, and one mean.

The mean is ImageNet-C's: accuracy averaged over each family's severities, then over families, so a
family with four severities weighs as much as one with two. Used by `benchmarks/robustness.py` and
`ferkit evaluate --robustness`.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ferkit.data import FaceDataset
from ferkit.evaluation.corruptions import Corruption, Face, corrupt, suite
from ferkit.fileio import atomic_write_text
from ferkit.inference.detect import Box, Detector, window

CLEAN = "clean"
CONTEXT_MARGIN = 0.6  # photo surroundings kept around each face: room for shifts and wide margins

Probabilities = Callable[[list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Row:
    """Accuracy on one dataset under one corruption (``family`` ``clean`` for the clean crops)."""

    dataset: str
    family: str
    level: str
    n: int
    accuracy: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def photo_faces(ds: FaceDataset, detector: Detector) -> list[Face | None]:
    """The largest detected face of every photo with its surroundings (None: no face found), found
    as `ferkit predict` finds it, the crop margin the detector's own."""
    from ferkit.evaluation.evaluate import full_resolution_images  # evaluate imports this module

    faces: list[Face | None] = [None] * len(ds)
    for index, images in full_resolution_images(ds):
        for i, image, dets in zip(index, images, detector.detect_many(images), strict=True):
            if dets:
                faces[i] = around(image, dets[0].box, detector.margin)
    return faces


def around(image: np.ndarray, box: Box, margin: float) -> Face:
    """A Face whose context is a square cut of ``image`` wide enough for every framing shift; its
    `Face.crop` equals ``square_crop(image, box, margin)`` pixel for pixel."""
    x, y, w, h = box
    side = max(1, round(max(w, h) * (1 + CONTEXT_MARGIN)))
    x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    # An even origin: Python rounds halves to even, so only an even offset moves square_crop's
    # rounded placement by exactly the offset.
    x0, y0 = x0 - x0 % 2, y0 - y0 % 2
    return Face(window(image, x0, y0, side + 2), (x - x0, y - y0, w, h), margin)


def accuracy(probs: np.ndarray, labels: np.ndarray, found: np.ndarray) -> float:
    """Top-1 accuracy over all items; an item without a face counts as a miss."""
    hit = np.zeros(len(labels), bool)
    hit[found] = probs.argmax(1) == labels[found]
    return float(hit.mean()) if len(hit) else float("nan")


def run(
    dataset: str,
    faces: Sequence[Face | None],
    labels: np.ndarray,
    probabilities: Probabilities,
    corruptions: Sequence[Corruption] | None = None,
    seed: int = 0,
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Clean accuracy, then accuracy under each corruption (photo-only ones only where faces have
    surroundings), all on the same items; ``labels`` index the model's classes."""
    found = np.array([f is not None for f in faces], bool)
    kept = [f for f in faces if f is not None]
    photos = any(f.has_context for f in kept)
    rows = []
    for c in [None, *(corruptions if corruptions is not None else suite())]:
        if c is not None and c.photos_only and not photos:
            continue
        t0 = time.perf_counter()
        probs = probabilities(corrupt(kept, c, seed)) if kept else np.zeros((0, 1), np.float32)
        row = Row(dataset, c.family if c else CLEAN, c.level if c else "", len(faces),
                  accuracy(probs, labels, found), time.perf_counter() - t0)  # fmt: skip
        rows.append(row)
        if progress:
            progress(row)
    return rows


@dataclass(frozen=True)
class Summary:
    """One dataset's clean accuracy, the mean over families and its ratio to clean."""

    dataset: str
    n: int
    clean: float
    mean: float
    relative: float
    families: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def summarise(rows: Sequence[Row]) -> list[Summary]:
    """Per dataset: accuracy averaged within each family, then across families (ImageNet-C)."""
    out = []
    for name in dict.fromkeys(r.dataset for r in rows):
        mine = [r for r in rows if r.dataset == name]
        clean = next(r.accuracy for r in mine if r.family == CLEAN)
        fams: dict[str, list[float]] = {}
        for r in mine:
            if r.family != CLEAN:
                fams.setdefault(r.family, []).append(r.accuracy)
        family_mean = {f: float(np.mean(v)) for f, v in fams.items()}
        mean = float(np.mean(list(family_mean.values()))) if family_mean else clean
        out.append(Summary(name, mine[0].n, clean, mean, mean / clean if clean else 0.0, family_mean))
    return out


def rows_csv(rows: Sequence[dict]) -> str:
    """CSV text of row dicts (header from the first)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def evaluate_robustness(
    name: str,
    ds: FaceDataset,
    labels: np.ndarray,
    probabilities: Probabilities,
    detector: Detector | None,
    out: Path,
) -> Summary:
    """`ferkit evaluate --robustness`: every shift on a dataset's items (stored crops, or the
    detector's crops of whole photos), written to OUT/robustness.csv and OUT/robustness.json."""
    faces = [Face.of_crop(im) for im in ds.images] if detector is None else photo_faces(ds, detector)
    rows = run(name, faces, labels, probabilities)
    (summary,) = summarise(rows)
    atomic_write_text(out / "robustness.csv", rows_csv([r.to_dict() for r in rows]))
    record = {"summary": summary.to_dict(), "rows": [r.to_dict() for r in rows]}
    atomic_write_text(out / "robustness.json", json.dumps(record, indent=2))
    return summary
