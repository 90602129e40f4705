"""Face detectors behind one small interface: YuNet (accurate), Haar (offline fallback), none (pre-cropped).

Images are uint8 RGB ``(H, W, 3)`` or gray ``(H, W)`` / ``(H, W, 1)``, as ferkit reads them; boxes are
``(x, y, w, h)`` in the original image's pixels. Large images are detected on a downscaled copy
(``max_side``) because detector cost grows with the pixel count while faces stay findable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ferkit.data.imageops import resize, to_gray
from ferkit.errors import FerkitError
from ferkit.extras import opencv
from ferkit.inference.backends import onnx_session

YUNET_URL = "https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet"
YUNET_ENV = "FERKIT_YUNET_MODEL"
YUNET_MIN_SIDE = 10  # pixels: YuNet finds faces of about 10 px and more
YUNET_ASSET = "face_detection_yunet_2026may.onnx"  # shipped in ferkit/assets (MIT, YUNET_LICENSE.txt)
YUNET_STRIDES = (8, 16, 32)
YUNET_DIVISOR = 32  # the input is zero-padded (bottom, right) to a multiple of the largest stride
YUNET_OUTPUTS = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox") for s in YUNET_STRIDES)
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
        crop = np.pad(crop, ((top, bottom), (left, right), (0, 0)), mode="edge")
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
    width, height = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    return resize(image, width, height).reshape(height, width, image.shape[2]), scale


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
            if np.isfinite((x, y, w, h)).all() and w > 0 and h > 0  # exp() of a large box logit overflows
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
    """(H, W, 1|3) RGB or gray → (H, W, 3) BGR, the channel order OpenCV's models take."""
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., ::-1]


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
    """OpenCV's YuNet CNN detector, robust to pose, scale and lighting, run on onnxruntime and decoded
    as ``cv2.FaceDetectorYN`` decodes it (same anchors, score, NMS).

    Why not ``cv2.FaceDetectorYN`` itself: OpenCV's DNN engine computes YuNet wrongly when a side of
    the padded input is 32 px (a 1-pixel stride-32 map, i.e. images up to 32 px wide or tall): it
    reads uninitialised memory, so such a photo's faces depended on what ran before it in the process
    (issue 22). At every other size onnxruntime gives OpenCV's boxes (all 2,096 larger muxspace
    photos; scores within 1e-6), and the same outputs for the same input whatever ran before.
    """

    name = "yunet"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.3,
        margin: float = 0.2,
        max_side: int | None = 1280,
        threads: int | None = None,
    ):
        super().__init__(margin, max_side)
        self.model_path = find_yunet_model(model_path)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._session = onnx_session(self.model_path, threads, "not a usable YuNet ONNX model")
        outputs = {o.name for o in self._session.get_outputs()}
        missing = [n for n in YUNET_OUTPUTS if n not in outputs]
        if missing:
            raise FerkitError(f"{self.model_path}: not a usable YuNet ONNX model (no output {missing[0]})")
        self._input = self._session.get_inputs()[0].name

    def _find(self, image: np.ndarray) -> list[tuple[float, float, float, float, float | None]]:
        if min(image.shape[:2]) < YUNET_MIN_SIDE:  # too thin to hold a face; YuNet returns noise there
            return []
        out, cols = self._outputs(image)
        found = np.concatenate([_yunet_decode(out, stride, cols // stride) for stride in YUNET_STRIDES])
        found = found[found[:, 4] >= self.score_threshold]
        if len(found) > 1:  # cv2.FaceDetectorYN's NMS: boxes truncated to int, at most 5000 kept
            found = found[nms(np.trunc(found[:, :4]), found[:, 4], self.nms_threshold, 5000)]
        return [(float(x), float(y), float(w), float(h), float(score)) for x, y, w, h, score in found]

    def _outputs(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
        """The network's outputs by name on the zero-padded BGR image, and the padded width."""
        height, width = image.shape[:2]
        pad_h, pad_w = (-(-side // YUNET_DIVISOR) * YUNET_DIVISOR for side in (height, width))
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)  # BGR 0-255 as cv2.dnn.blobFromImage makes it
        blob[0, :, :height, :width] = to_bgr(image).transpose(2, 0, 1)
        values = self._session.run(list(YUNET_OUTPUTS), {self._input: blob})
        return dict(zip(YUNET_OUTPUTS, values, strict=True)), pad_w


def _yunet_decode(out: dict[str, np.ndarray], stride: int, cols: int) -> np.ndarray:
    """One stride's anchors → float32 ``(x, y, w, h, score)`` rows, with OpenCV's arithmetic."""
    cls, obj = out[f"cls_{stride}"].reshape(-1), out[f"obj_{stride}"].reshape(-1)
    bbox = out[f"bbox_{stride}"].reshape(-1, 4)
    index = np.arange(len(cls))
    col, row = (index % cols).astype(np.float32), (index // cols).astype(np.float32)
    s = np.float32(stride)
    score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
    w = np.exp(bbox[:, 2].astype(np.float64)).astype(np.float32) * s
    h = np.exp(bbox[:, 3].astype(np.float64)).astype(np.float32) * s
    x = (col + bbox[:, 0]) * s - w / np.float32(2)
    y = (row + bbox[:, 1]) * s - h / np.float32(2)
    return np.stack([x, y, w, h, score], axis=1).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int) -> np.ndarray:
    """Greedy non-maximum suppression as ``cv2.dnn.NMSBoxes``: the indices kept, best score first.

    Boxes are ``(x, y, w, h)``; a box is dropped when its IoU with a kept one exceeds the threshold.
    """
    order = np.argsort(-scores, kind="stable")[:top_k]
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    keep: list[int] = []
    for i in order:
        if keep:
            k = np.asarray(keep)
            inter = np.clip(np.minimum(x1[i], x1[k]) - np.maximum(x0[i], x0[k]), 0, None) * np.clip(
                np.minimum(y1[i], y1[k]) - np.maximum(y0[i], y0[k]), 0, None
            )
            union = area[i] + area[k] - inter
            iou = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)  # empty boxes: as cv2
            if (iou > iou_threshold).any():
                continue
        keep.append(int(i))
    return np.asarray(keep, np.int64)


class HaarDetector(Detector):
    """OpenCV's frontal-face Haar cascade, bundled with opencv-python 4.x: works fully offline.

    Needs OpenCV, which the light install leaves out: ``pip install 'ferkit[video]'``.
    """

    name = "haar"

    def __init__(
        self, min_neighbors: int = 5, min_size: int = 24, margin: float = 0.2, max_side: int | None = 1280
    ):
        super().__init__(margin, max_side)
        cv2 = self._cv2 = opencv("the haar face detector")
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
        gray = image[..., 0] if image.shape[2] == 1 else to_gray(image)
        boxes = self._cascade.detectMultiScale(
            self._cv2.equalizeHist(np.ascontiguousarray(gray)),
            1.1,
            self.min_neighbors,
            minSize=(self.min_size, self.min_size),
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
    threads: int | None = None,
) -> Detector:
    """A detector by name: ``yunet`` (model shipped; ``model_path`` overrides it; ``threads``:
    onnxruntime's intra-op threads, None: one per core), ``haar`` or ``none``."""
    if name == "yunet":
        return YuNetDetector(model_path, score_threshold=score_threshold, margin=margin, threads=threads)
    if name == "haar":
        return HaarDetector(margin=margin)
    if name == "none":
        return NoDetector()
    raise FerkitError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTORS)}")
