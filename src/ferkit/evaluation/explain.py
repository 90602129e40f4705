"""`ferkit explain`: Grad-CAM overlay and class probabilities for the face in each photo.

The face is found and cropped exactly as `ferkit predict` does it (same detector, same square crop
with margin, so the aspect ratio is kept); ``detector="none"`` uses each image whole (face crops).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import FerkitError
from ferkit.evaluation import plots
from ferkit.evaluation.gradcam import gradcam_overlays
from ferkit.fileio import atomic_write_text
from ferkit.inference.backends import TorchBackend
from ferkit.inference.recognizer import Recognizer, read_image
from ferkit.models.preprocess import match_channels, resize_batch


@dataclass
class Explanation:
    """One image's result: the label and probabilities of its largest face, or why there is none."""

    image: str
    label: str | None = None
    score: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    box: tuple[int, int, int, int] | None = None  # the face in the image (x, y, w, h)
    figure: str | None = None
    error: str | None = None


def face_crop(rec: Recognizer, path: Path) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The largest face of an image file as predict crops it, and its box; FerkitError if none."""
    image = read_image(path)
    detections = rec.detector.detect(image)
    if not detections:
        raise FerkitError(f"{path}: no face found (use --detector none for images that are face crops)")
    return rec.detector.crops(image, detections[:1])[0], detections[0].box


def explain(
    model: str | os.PathLike,
    images: list[str | os.PathLike],
    out: str | os.PathLike,
    detector: str = "yunet",
    yunet_model: str | os.PathLike | None = None,
) -> list[Explanation]:
    """One PNG per image (the face, Grad-CAM for the predicted class, probability bars) and a JSON.

    Args:
        model: a run directory or ``.pt`` checkpoint (Grad-CAM needs the torch model).
        images: image files; an unreadable file or one without a face is reported, not fatal.
        out: output folder.
        detector: ``yunet``/``haar`` as in predict, or ``none`` for face crops.
        yunet_model: a YuNet ``.onnx`` file overriding the default one.
    """
    rec = Recognizer.load(model, detector, "cpu", yunet_model)
    if not isinstance(rec.backend, TorchBackend):
        raise FerkitError(f"{model}: Grad-CAM needs a torch model (a run directory or .pt), not an ONNX file")
    names, pp = rec.class_names, rec.preprocessing
    side = max(pp.input_size, 96)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in map(Path, images):
        try:
            crop, box = face_crop(rec, path)
        except FerkitError as exc:
            results.append(Explanation(str(path), error=str(exc)))
            continue
        face = resize_batch(match_channels(crop[None], 3), side, pp.interpolation)
        probs = rec.probabilities(face)[0]
        overlay = gradcam_overlays(rec.backend.model, face, [int(probs.argmax())], pp)[0]
        png = plots.explanation_png(face[0], overlay, names, probs, out / f"{path.stem}_gradcam.png")
        results.append(Explanation(
            str(path), names[int(probs.argmax())], float(probs.max()),
            dict(zip(names, map(float, probs), strict=True)), tuple(int(v) for v in box), str(png),
        ))  # fmt: skip
    atomic_write_text(out / "explain.json", json.dumps([asdict(r) for r in results], indent=2))
    return results
