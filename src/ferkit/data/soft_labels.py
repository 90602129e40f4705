"""Soft labels: one probability vector per image, keyed by the image's pixel digest.

A teacher model's predictions over a dataset are computed once (they cost a full inference pass)
and stored as an ``.npz`` (no pickles) that training reads like any other data: items are matched
by the digest of their decoded pixels, so the file stays valid however the dataset is re-split,
cleaned or subset.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.errors import FerkitError
from ferkit.fileio import atomic_output

FORMAT = "ferkit-soft-labels-v1"


@dataclass
class SoftLabels:
    """``probs[i]`` is the teacher's distribution over ``class_names`` for the image ``digests[i]``."""

    digests: np.ndarray  # (N,) S16
    probs: np.ndarray  # (N, C) float32
    class_names: tuple[str, ...]
    meta: dict = field(default_factory=dict)  # teacher, TTA, dataset key: what produced the file

    def save(self, path: str | os.PathLike) -> None:
        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                format=np.array(FORMAT),
                digests=np.asarray(self.digests, dtype="S16"),
                probs=np.asarray(self.probs, dtype=np.float32),
                class_names=np.array(self.class_names),
                meta=np.array(json.dumps(self.meta)),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> SoftLabels:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    raise ValueError(f"format {z['format']!s}")
                return cls(
                    z["digests"], z["probs"], tuple(z["class_names"].tolist()), json.loads(str(z["meta"]))
                )
        except (OSError, ValueError, KeyError) as exc:
            raise FerkitError(f"{path}: not a ferkit soft-label file ({exc})") from None

    def for_dataset(self, ds: FaceDataset, origin: str = "soft labels") -> np.ndarray:
        """(len(ds), len(ds.class_names)) teacher probabilities in the dataset's class order."""
        missing = sorted(set(ds.class_names) - set(self.class_names))
        if missing:
            raise FerkitError(
                f"{origin}: the teacher has no class {missing} (it has {list(self.class_names)})"
            )
        cols = [self.class_names.index(c) for c in ds.class_names]
        row = {d: i for i, d in enumerate(self.digests.tolist())}
        idx = np.array([row.get(d, -1) for d in ds.digests.tolist()])
        if (idx < 0).any():
            raise FerkitError(
                f"{origin}: {(idx < 0).sum()} of {len(ds)} training images have no teacher probabilities "
                "(computed for another dataset?)"
            )
        probs = self.probs[idx][:, cols]
        return probs / probs.sum(1, keepdims=True)


def dataset_key(ds: FaceDataset) -> str:
    """A content key of a dataset's images (order-independent)."""
    return hashlib.sha256(b"".join(sorted(set(ds.digests.tolist())))).hexdigest()[:24]
