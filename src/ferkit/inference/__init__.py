"""Inference: recognise expressions in face crops, photos and videos with a trained or exported model.

Import-light on purpose: no torch at import (only `Recognizer.from_run` loads it) and no matplotlib
(only a requested plot does). Depends on ferkit.models and ferkit.data, never on training/evaluation.
"""

from ferkit.inference.detect import Detection, Detector, make_detector
from ferkit.inference.recognizer import FacePrediction, ImageResult, Recognizer, read_image

__all__ = [
    "Detection",
    "Detector",
    "FacePrediction",
    "ImageResult",
    "Recognizer",
    "make_detector",
    "read_image",
]
