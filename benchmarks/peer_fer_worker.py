"""Worker for peer_fer.py: runs in the fer venv (never ferkit's), classifies face crops with fer's own
bundled models and prints one JSON object (class probabilities per face and timings) on stdout.

    .venv-fer/bin/python benchmarks/peer_fer_worker.py --faces FACES.npz [--modes tflite keras api]

Modes, all starting from the same (N, 48, 48) uint8 grayscale crops:
  tflite  FER() default classifier (quantized TFLite model; fer invokes it one face at a time),
          fed the crops exactly as FER.detect_emotions prepares a face: cv2.resize to the model's
          input size (64x64), /255, -0.5, *2. No face detection: the crops are already faces.
  keras   FER(use_tflite=False): the bundled Keras model (emotion_model.hdf5), same preprocessing,
          called on whole batches of --batch faces (fer's own _classify_emotions).
  api     fer's public API per image: FER().detect_emotions(img, face_rectangles=[whole crop]),
          which also pads the box by fer's default offsets (10 px) and rounds scores to 2 decimals.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def load_fer():
    """fer's FER class and version; 25.10.x no longer exports FER from the package root."""
    import fer

    try:
        from fer.fer import FER
    except ImportError:
        from fer import FER
    return FER, fer.__version__


def preprocess(faces: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What FER.detect_emotions does to each face before classifying it."""
    x = np.array([cv2.resize(f, size) for f in faces], dtype="float32")
    return (x / 255.0 - 0.5) * 2.0


def classify(detector, faces: np.ndarray, batch: int) -> np.ndarray:
    """fer's classifier (TFLite or Keras, as the detector was built) over the crops, in chunks."""
    size = detector._FER__emotion_target_size
    out = [
        np.asarray(detector._classify_emotions(preprocess(faces[i : i + batch], size)), dtype=np.float32)
        for i in range(0, len(faces), batch)
    ]
    return np.concatenate(out)


def via_api(detector, faces: np.ndarray, labels: list[str]) -> np.ndarray:
    """fer's public per-image API with the whole crop given as the face box."""
    probs = np.zeros((len(faces), len(labels)), np.float32)
    for i, face in enumerate(faces):
        h, w = face.shape
        found = detector.detect_emotions(
            cv2.cvtColor(face, cv2.COLOR_GRAY2BGR), face_rectangles=[(0, 0, w, h)]
        )
        if found:
            probs[i] = [found[0]["emotions"][name] for name in labels]
    return probs


def measure(
    fn: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, repeats: int
) -> tuple[np.ndarray, list]:
    """Warm up on a few faces, then time ``repeats`` full passes; the last pass's probabilities."""
    fn(faces[:32])
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        probs = fn(faces)
        seconds.append(time.perf_counter() - start)
    return probs, seconds


def run_mode(mode: str, fer_cls, faces: np.ndarray, labels: list[str], args: argparse.Namespace) -> dict:
    detector = fer_cls(use_tflite=mode != "keras")
    if mode == "api":
        fn, batch = (lambda f: via_api(detector, f, labels)), 1
    else:
        batch = args.batch if mode == "keras" else 1  # fer's TFLite path invokes one face at a time
        fn = lambda f: classify(detector, f, args.batch)  # noqa: E731
    probs, seconds = measure(fn, faces, args.repeats)
    return {
        "probs": np.round(probs, 6).tolist(),
        "seconds": seconds,
        "faces_per_s": len(faces) / statistics.median(seconds),
        "batch": batch,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", required=True, help="npz with 'faces': (N, H, W) uint8 grayscale crops")
    p.add_argument(
        "--modes", nargs="+", choices=("tflite", "keras", "api"), default=["tflite", "keras", "api"]
    )
    p.add_argument("--batch", type=int, default=256, help="faces per Keras call (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over all faces (median is used)")
    args = p.parse_args(argv)
    faces = np.load(args.faces)["faces"]
    fer_cls, version = load_fer()
    import tensorflow as tf

    labels = [name for _, name in sorted(fer_cls._get_labels().items())]
    modes = {m: run_mode(m, fer_cls, faces, labels, args) for m in args.modes}
    result = {"fer": version, "tensorflow": tf.__version__, "labels": labels, "modes": modes}
    sys.stdout.write("\n" + json.dumps(result) + "\n")  # the last line; logs may precede it


if __name__ == "__main__":
    main()
