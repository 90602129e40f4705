"""Face detectors behind one small interface: YuNet (accurate), Haar (offline fallback), none (pre-cropped).

Images are uint8 RGB ``(H, W, 3)`` or gray ``(H, W)`` / ``(H, W, 1)``, as ferkit reads them; boxes are
``(x, y, w, h)`` in the original image's pixels. Large images are detected on a downscaled copy
(``max_side``) because detector cost grows with the pixel count while faces stay findable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import FerkitError

YUNET_URL = "https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet"
YUNET_ENV = "FERKIT_YUNET_MODEL"
YUNET_MIN_SIDE = 10  # pixels: YuNet finds faces of about 10 px and more
YUNET_ASSET = "face_detection_yunet_2026may.onnx"  # shipped in ferkit/assets (MIT, YUNET_LICENSE.txt)
DETECTORS = ("yunet", "haar", "none")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Detection:
    """One face: its box (clipped to the image) and the detector's confidence, when it has one."""

    box: Box
    score: float | None = None


def as_hwc(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Any supported array as uint8 ``(H, W, 1|3)``; RGBA loses its alpha. Clear error otherwise."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise FerkitError(f"{what}: expected a uint8 image, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise FerkitError(f"{what}: expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {arr.shape}")
    return arr[..., :3] if arr.shape[2] == 4 else arr


def square_crop(image: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """Square crop around ``box``, its side ``(1 + margin)`` x the longer box side, padded at borders.

    Square because the classifier was trained on square faces (a non-square crop would be squashed);
    border pixels are replicated so a face at the edge keeps its position in the crop.
    """
    x, y, w, h = box
    side = max(1, round(max(w, h) * (1 + margin)))
    return window(image, round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side)


def window(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side`` x ``side`` square of ``image`` at (x0, y0), border pixels replicated outside it."""
    height, width = image.shape[:2]
    crop = image[max(y0, 0) : max(min(y0 + side, height), 0), max(x0, 0) : max(min(x0 + side, width), 0)]
    if crop.size == 0:  # box entirely outside the image: nothing to replicate
        return np.zeros((side, side, image.shape[2]), np.uint8)
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = side - top - crop.shape[0], side - left - crop.shape[1]
    if top or left or bottom or right:
        crop = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return crop.reshape(side, side, image.shape[2])


def clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    """Float box → int box inside the image (at least 1x1)."""
    x0, y0 = min(max(round(x), 0), width - 1), min(max(round(y), 0), height - 1)
    x1, y1 = min(max(round(x + w), x0 + 1), width), min(max(round(y + h), y0 + 1), height)
    return x0, y0, x1 - x0, y1 - y0


def fit_side(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side``; returns the image and the scale used."""
    longest = max(image.shape[:2])
    if not max_side or longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small.reshape(size[1], size[0], image.shape[2]), scale


class Detector:
    """Finds faces and cuts square crops around them. Subclasses implement ``_find``."""

    name = "base"

    def __init__(self, margin: float = 0.2, max_side: int | None = 1280):
        if margin < 0:
            raise FerkitError(f"detector margin must be >= 0, not {margin}")
        self.margin = margin
        self.max_side = max_side

    def _find(self, image: np.ndarray) -> list[tuple[float, float, float, float, float | None]]:
        """Raw ``(x, y, w, h, score)`` boxes on an (already downscaled) ``(H, W, 1|3)`` image."""
        raise NotImplementedError

    def detect(self, image: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """All faces in one image, largest first; no face gives an empty list.

        ``max_side`` overrides the detector's own for this call (video detects on smaller frames).
        """
        image = as_hwc(image)
        small, scale = fit_side(image, max_side or self.max_side)
        height, width = image.shape[:2]
        found = [
            Detection(clip_box(x / scale, y / scale, w / scale, h / scale, width, height), score)
            for x, y, w, h, score in self._find(small)
            if np.isfinite((x, y, w, h)).all() and w > 0 and h > 0  # YuNet can emit inf/NaN boxes
        ]
        return sorted(found, key=lambda d: -d.box[2] * d.box[3])

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces of every image (OpenCV detectors take one image per call)."""
        return [self.detect(image) for image in images]

    def crops(self, image: np.ndarray, detections: Sequence[Detection]) -> list[np.ndarray]:
        """The classifier input for each detection: a square crop with margin."""
        image = as_hwc(image)
        return [square_crop(image, d.box, self.margin) for d in detections]


def to_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.shape[2] == 1 else cv2.COLOR_RGB2BGR)


def find_yunet_model(model_path: str | os.PathLike | None = None) -> Path:
    """The YuNet ONNX file: explicit argument, else $FERKIT_YUNET_MODEL, else the one in the package."""
    if model_path is None and os.environ.get(YUNET_ENV):
        model_path = os.environ[YUNET_ENV]
    if model_path is not None:
        path = Path(os.path.expandvars(str(model_path))).expanduser()
        if not path.is_file():
            raise FerkitError(f"{path}: YuNet face detector model not found")
        return path
    path = Path(str(resources.files("ferkit") / "assets" / YUNET_ASSET))
    if not path.is_file():
        raise FerkitError(
            f"{path}: the YuNet face detector shipped with ferkit is missing (a broken installation?); "
            f"reinstall ferkit, pass a model with --yunet-model FILE or ${YUNET_ENV} "
            f"(download: {YUNET_URL}), "
            "or use --detector haar"
        )
    return path


class YuNetDetector(Detector):
    """OpenCV's YuNet CNN detector (``cv2.FaceDetectorYN``): robust to pose, scale and lighting."""

    name = "yunet"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.3,
        margin: float = 0.2,
        max_side: int | None = 1280,
    ):
        super().__init__(margin, max_side)
        self.model_path = find_yunet_model(model_path)
        self._size = (320, 320)
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", self._size, score_threshold, nms_threshold, 5000
            )
        except cv2.error as exc:  # "OpenCV(4.x) file:line: error: (-2:...) REASON in function 'f'"
            reason = re.sub(r".*error: \([^)]*\) |\s*in function .*$", "", str(exc).strip().splitlines()[-1])
            raise FerkitError(f"{self.model_path}: not a usable YuNet ONNX model ({reason})") from None

    def _find(self, image: np.ndarray) -> list[tuple[float, float, float, float, float | None]]:
        if min(image.shape[:2]) < YUNET_MIN_SIDE:  # too thin to hold a face; YuNet returns noise there
            return []
        size = (image.shape[1], image.shape[0])
        if size != self._size:  # re-sizing the network is cheap but not free: video frames share a size
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(to_bgr(image))
        if faces is None:
            return []
        return [(float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[14])) for f in faces]


class HaarDetector(Detector):
    """OpenCV's frontal-face Haar cascade, bundled with opencv-python 4.x: works fully offline."""

    name = "haar"

    def __init__(
        self, min_neighbors: int = 5, min_size: int = 24, margin: float = 0.2, max_side: int | None = 1280
    ):
        super().__init__(margin, max_side)
        folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
        self._cascade = cv2.CascadeClassifier(os.path.join(folder, "haarcascade_frontalface_default.xml"))
        if self._cascade.empty():
            raise FerkitError(
                "this OpenCV build has no bundled Haar cascade (OpenCV 5 wheels dropped them); "
                "use --detector yunet"
            )
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def _find(self, image: np.ndarray) -> list[tuple[float, float, float, float, float | None]]:
        gray = image[..., 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        boxes = self._cascade.detectMultiScale(
            cv2.equalizeHist(gray), 1.1, self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        return [(float(x), float(y), float(w), float(h), None) for x, y, w, h in boxes]


class NoDetector(Detector):
    """No detection: every image is one pre-cropped face, used whole (as in training data)."""

    name = "none"

    def __init__(self) -> None:
        super().__init__(margin=0.0, max_side=None)

    def _find(self, image: np.ndarray) -> list[tuple[float, float, float, float, float | None]]:
        return [(0.0, 0.0, float(image.shape[1]), float(image.shape[0]), None)]

    def crops(self, image: np.ndarray, detections: Sequence[Detection]) -> list[np.ndarray]:
        """The whole image, not squared: training images were resized whole, so inference does too."""
        return [as_hwc(image) for _ in detections]


def make_detector(
    name: str = "yunet",
    model_path: str | os.PathLike | None = None,
    score_threshold: float = 0.8,
    margin: float = 0.2,
) -> Detector:
    """A detector by name: ``yunet`` (model shipped; ``model_path`` overrides it), ``haar`` or ``none``."""
    if name == "yunet":
        return YuNetDetector(model_path, score_threshold=score_threshold, margin=margin)
    if name == "haar":
        return HaarDetector(margin=margin)
    if name == "none":
        return NoDetector()
    raise FerkitError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTORS)}")
