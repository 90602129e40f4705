"""Teacher soft labels for distillation, computed with any model once and cached by content."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ferkit.data.dataset import FaceDataset, cache_root
from ferkit.data.soft_labels import SoftLabels, dataset_key
from ferkit.errors import FerkitError
from ferkit.inference.recognizer import SHIPPED_TTA, Recognizer, shipped_model_file


def model_fingerprint(model: str) -> str:
    """A hash of a model's files (shipped name, file or run directory without its resume state)."""
    if model in SHIPPED_TTA:
        return hashlib.sha256(shipped_model_file(model).read_bytes()).hexdigest()[:24]
    path = Path(model)
    if not path.exists():
        raise FerkitError(f"teacher {model}: no such model (a shipped name, run directory or model file)")
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "last.pt"):
        h.update(f.relative_to(path).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:24]


def teacher_soft_labels(model: str, ds: FaceDataset, tta: str = "flip", batch_size: int = 256) -> Path:
    """The teacher's probabilities for every image of ``ds``: computed once, then reused.

    Keyed by the teacher's file content, the dataset's image content and the TTA, so a changed model
    or dataset never reuses a stale file. Returns the ``.npz`` path under the cache directory.
    """
    key = hashlib.sha256(f"{model_fingerprint(model)}|{dataset_key(ds)}|{tta}".encode()).hexdigest()[:24]
    path = cache_root() / "soft_labels" / f"{key}.npz"
    if path.is_file():
        return path
    rec = Recognizer.load(model, detector="none")
    rec.tta = tta
    uniq, first = np.unique(ds.digests, return_index=True)  # duplicated images are scored once
    probs = np.concatenate([
        rec.probabilities(ds.take(first[i : i + batch_size]), batch_size)
        for i in tqdm(range(0, len(first), batch_size), desc="teacher", unit="batch", leave=False)
    ])  # fmt: skip
    meta = {"teacher": str(model), "tta": tta, "dataset": dataset_key(ds), "origin": ds.origin}
    SoftLabels(uniq, probs, tuple(rec.class_names), meta).save(path)
    return path
