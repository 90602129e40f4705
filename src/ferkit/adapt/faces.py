"""A dataset's faces as the base model sees them, and its frozen outputs, computed once and cached.

Whole photos go through the detector as `ferkit predict` does (the largest face, square crop);
pre-cropped faces (``--detector none``) are used as stored. Every crop is kept at the model's input
side in its training channels, so a fine-tuning run and inference resize nothing twice. Outputs
(probabilities and embeddings of each TTA view) are cached under the dataset cache, keyed by the
model's files, the dataset's pixel content and the detector, as soft labels are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ferkit.data import FaceDataset
from ferkit.data.dataset import cache_root
from ferkit.data.soft_labels import dataset_key
from ferkit.evaluation.evaluate import full_resolution_images
from ferkit.fileio import atomic_output
from ferkit.inference.recognizer import Recognizer
from ferkit.inference.soft_labels import model_fingerprint

FORMAT = "ferkit-adapt-faces-v1"


@dataclass
class Faces:
    """Per item: its face crop, whether one was found, and the frozen model's outputs per view.

    Attributes:
        crops: (N, S, S, C) uint8, S = the model's input side, C = its training channels.
        found: (N,) False where the detector found no face (crop is then blank).
        probs: (V, N, K) base-model probabilities of each TTA view (V = 2 with flip).
        embeddings: (V, N, D) penultimate features of each view.
    """

    crops: np.ndarray
    found: np.ndarray
    probs: np.ndarray
    embeddings: np.ndarray

    def save(self, path) -> None:
        with atomic_output(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, format=np.array(FORMAT), crops=self.crops, found=self.found,
                     probs=self.probs, embeddings=self.embeddings)  # fmt: skip

    @classmethod
    def load(cls, path) -> Faces | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    return None
                return cls(z["crops"], z["found"], z["probs"], z["embeddings"])
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache entry is recomputed


def face_crops(rec: Recognizer, ds: FaceDataset, detector: str) -> tuple[np.ndarray, np.ndarray]:
    """(crops, found) for every item of ``ds``, in its order."""
    pp = rec.preprocessing
    side = round(pp.input_size / pp.crop_pct)
    crops = np.zeros((len(ds), side, side, pp.data_channels), np.uint8)
    found = np.zeros(len(ds), dtype=bool)
    if detector == "none":
        for start in range(0, len(ds), 256):
            idx = np.arange(start, min(start + 256, len(ds)))
            crops[idx] = rec.standard_crops(list(ds.take(idx)), start)
        found[:] = True
        return crops, found
    bar = tqdm(total=len(ds), desc="faces", unit="photo", leave=False)
    for index, images in full_resolution_images(ds):
        for i, image, dets in zip(index, images, rec.detector.detect_many(images), strict=True):
            if dets:
                crops[i] = rec.standard_crops(rec.detector.crops(image, dets[:1]), i)[0]
                found[i] = True
        bar.update(len(index))
    bar.close()
    return crops, found


def frozen_outputs(rec: Recognizer, crops: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(V, N, K) probabilities and (V, N, D) embeddings of every TTA view of ``crops``."""
    views = rec.outputs(crops, batch)
    return np.stack([p for p, _ in views]), np.stack([e for _, e in views])


def dataset_faces(rec: Recognizer, model: str, ds: FaceDataset, detector: str) -> Faces:
    """`Faces` of ``ds`` for the model named ``model`` (cached; see the module docstring)."""
    kind = type(rec.backend).__name__
    parts = f"{model_fingerprint(model)}|{kind}|{dataset_key(ds)}|{detector}|{rec.tta}|{rec.preprocessing}"
    path = cache_root() / "adapt" / f"{hashlib.sha256(parts.encode()).hexdigest()[:24]}.npz"
    order = np.argsort(ds.digests, kind="stable")  # cache in content order: any item order reuses it
    cached = Faces.load(path) if path.is_file() else None
    if cached is None or len(cached.found) != len(ds):
        crops, found = face_crops(rec, ds.subset(order), detector)
        probs, emb = frozen_outputs(rec, crops)
        cached = Faces(crops, found, probs, emb)
        cached.save(path)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return Faces(cached.crops[back], cached.found[back], cached.probs[:, back], cached.embeddings[:, back])
