"""`ferkit explain`: Grad-CAM overlay and class probabilities for single face images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ferkit.data.decode import decode_bytes
from ferkit.errors import FerkitError
from ferkit.evaluation import plots
from ferkit.evaluation.gradcam import gradcam_overlays
from ferkit.fileio import atomic_write_text
from ferkit.models.factory import load_checkpoint
from ferkit.models.predict import predict_proba


def read_face(path: Path, size: int) -> np.ndarray:
    """A face image file as (size, size, 3) uint8 RGB; a clear error when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FerkitError(f"{path}: cannot read: {exc.strerror}") from None
    dec = decode_bytes(data, size, "rgb")
    if dec.pixels is None:
        raise FerkitError(f"{path}: {dec.reason}")
    return dec.pixels


def explain(
    run_dir: str | os.PathLike, images: list[str | os.PathLike], out: str | os.PathLike
) -> list[dict]:
    """One PNG per image (input, Grad-CAM for the predicted class, probability bars) and a JSON."""
    model, names, pp = load_checkpoint(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in images]
    faces = np.stack([read_face(p, max(pp.input_size, 96)) for p in paths])
    probs = predict_proba(model, faces, pp)
    overlays = gradcam_overlays(model, faces, probs.argmax(1).tolist(), pp)
    results = []
    for path, face, overlay, p in zip(paths, faces, overlays, probs, strict=True):
        png = plots.explanation_png(face, overlay, names, p, out / f"{path.stem}_gradcam.png")
        label = names[int(p.argmax())]
        probabilities = dict(zip(names, map(float, p), strict=True))
        results.append(
            {"image": str(path), "label": label, "score": float(p.max()), "probabilities": probabilities,
             "figure": str(png)}
        )  # fmt: skip
    atomic_write_text(out / "explain.json", json.dumps(results, indent=2))
    return results
