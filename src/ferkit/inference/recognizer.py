"""The `Recognizer` façade: detect faces, classify all of them in batches, return typed results.

Also the small I/O it needs: reading image files robustly and writing results atomically.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import FerkitError
from ferkit.fileio import atomic_output
from ferkit.inference.backends import Backend, ModelPaths, OnnxBackend, TorchBackend, as_paths
from ferkit.inference.detect import Box, Detection, Detector, as_hwc, make_detector
from ferkit.models.preprocess import (
    Preprocessing,
    check_tta,
    match_channels,
    prepare,
    resize_batch,
    tta_views,
)

ASSETS = resources.files("ferkit") / "assets"
# Models shipped in ASSETS as ``{name}_model.onnx`` (else ``.pt``), with the TTA their card's headline
# accuracy is measured with, for files whose preprocessing does not name one (older exports): the
# accurate default uses flip (benchmarks/tta.py: no costlier mode beat it on all of PublicTest), the
# fast tier trades TTA for speed.
SHIPPED_TTA = {"default": "flip", "fast": "none"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".heic", ".heif")


def shipped_model_file(name: str) -> resources.abc.Traversable:
    """The package file of a shipped model: ``{name}_model.onnx`` (runs without torch), else
    ``{name}_model.pt`` (torch). Nothing is downloaded; a missing file is a FerkitError."""
    if name not in SHIPPED_TTA:
        raise FerkitError(f"unknown shipped model {name!r}; choose one of {sorted(SHIPPED_TTA)}")
    for suffix in (".onnx", ".pt"):
        asset = ASSETS / f"{name}_model{suffix}"
        if asset.is_file():
            return asset
    raise FerkitError(
        f"no {name!r} model is shipped in this installation; use Recognizer.from_run(RUN_DIR) "
        "or Recognizer.from_onnx(FILE) (CLI: --model RUN_DIR|FILE.onnx)"
    )


@dataclass
class FacePrediction:
    """One classified face: ``box`` (x, y, w, h) in the original image, ``score`` the label's probability."""

    box: Box
    label: str
    score: float
    probabilities: dict[str, float]
    detection_score: float | None = None

    def to_dict(self) -> dict:
        x, y, w, h = self.box
        return {
            "box": {"x": x, "y": y, "w": w, "h": h},
            "label": self.label,
            "score": self.score,
            "probabilities": self.probabilities,
            "detection_score": self.detection_score,
        }


@dataclass
class ImageResult:
    """The faces of one image (empty when none was found), or the reason it could not be read."""

    source: str
    faces: list[FacePrediction]
    width: int = 0
    height: int = 0
    error: str | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # only when asked for

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "error": self.error,
            "faces": [f.to_dict() for f in self.faces],
        }

    def to_pandas(self):
        """This image's faces as a pandas DataFrame, one row per face (one row saying why when there
        is none), with the columns of `ferkit batch`'s Parquet results; needs pandas."""
        from ferkit.inference.tables import results_frame

        return results_frame([self])


def expand_inputs(
    inputs: Iterable[str | os.PathLike], extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> list[Path]:
    """Files, folders (recursive) and glob patterns → image paths, in order, without duplicates.

    A file named explicitly is always used (if unreadable it becomes an error entry); files found
    through a folder or a glob must have one of ``extensions`` (`ferkit batch` adds video ones).
    """
    inputs = [str(i) for i in inputs]
    found: list[Path] = []
    for item in inputs:
        pattern = os.path.expanduser(item)
        path = Path(pattern)
        if path.is_file():
            found.append(path)
            continue
        if not path.is_dir() and not any(c in item for c in "*?["):
            raise FerkitError(f"{item}: no such file or folder")
        matches = [path] if path.is_dir() else [Path(m) for m in sorted(glob.glob(pattern, recursive=True))]
        if not matches:
            raise FerkitError(f"{item}: no file matches this pattern")
        for m in matches:
            if m.is_dir():
                found += sorted(f for f in m.rglob("*") if _is_input_name(f, extensions))
            elif _is_input_name(m, extensions):
                found.append(m)
    unique = list(dict.fromkeys(found))
    if not unique:
        kind = "image" if extensions is IMAGE_EXTENSIONS else "input"
        raise FerkitError(f"no {kind} files found in {', '.join(inputs)}")
    return unique


def _is_input_name(path: Path, extensions: Sequence[str]) -> bool:
    """One of ``extensions`` and not hidden (skips macOS '._x.jpg' resource forks and the like)."""
    return path.suffix.lower() in extensions and not path.name.startswith(".") and path.is_file()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A file at full resolution as uint8 RGB (H, W, 3) or gray (H, W, 1), EXIF orientation applied.

    Same decoding as the data layer (HEIC, 16-bit, alpha on white, palette, CMYK); any failure is a
    FerkitError naming the file and the reason.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FerkitError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str, formats: Sequence[str] | None = None) -> np.ndarray:
    """An image file's bytes (e.g. an upload, never written to disk) decoded as `read_image` does.

    Args:
        data: the encoded file; its type is found from the content, never from a name.
        name: what error messages call it.
        formats: PIL format names to accept (None: every format PIL and pillow-heif read).

    Returns:
        uint8 RGB (H, W, 3) or gray (H, W, 1); a FerkitError naming ``name`` and the reason otherwise.
    """
    from ferkit.data.decode import decode_full  # lazy: keeps `import ferkit.inference` light

    decoded = decode_full(data, "auto", formats)
    if decoded.pixels is None:
        raise FerkitError(f"{name}: {decoded.reason}")
    return as_hwc(decoded.pixels, name)


def face_columns(class_names: Sequence[str]) -> list[str]:
    """CSV columns of one face: index, box, one probability per class, label."""
    return ["face", "x", "y", "w", "h", *class_names, "label"]


def face_values(index: int, face: FacePrediction) -> list:
    return [index, *face.box, *(f"{p:.6f}" for p in face.probabilities.values()), face.label]


@contextmanager
def csv_rows(path: str | os.PathLike, header: list[str]) -> Iterator[Any]:
    """A streaming CSV writer (header written) whose file appears atomically when the block ends."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        yield writer


@contextmanager
def json_array(path: str | os.PathLike) -> Iterator[Callable[[dict], None]]:
    """Stream items into a JSON array (memory stays flat on big folders); atomic like `csv_rows`."""
    with atomic_output(path) as tmp, open(tmp, "w") as fh:
        count = 0

        def add(item: dict) -> None:
            nonlocal count
            fh.write(("[\n" if count == 0 else ",\n") + json.dumps(item))
            count += 1

        yield add
        fh.write("\n]\n" if count else "[]\n")


def image_csv_header(class_names: Sequence[str]) -> list[str]:
    return ["image", *face_columns(class_names), "error"]


def image_csv_rows(result: ImageResult, n_classes: int) -> list[list]:
    """One row per face; an image without a face (empty ``face``) or unreadable (``error`` set) still
    gets one row, so no input is silently missing from the table."""
    if not result.faces:
        return [[result.source, *[""] * (n_classes + 6), result.error or ""]]
    return [[result.source, *face_values(i, f), ""] for i, f in enumerate(result.faces)]


class Recognizer:
    """Facial expression recognition on face crops, whole images, files.

    ``Recognizer.from_run(run_dir)`` / ``from_onnx(file)`` / ``default()``; the detector is built on
    first use, so ``predict_faces`` never needs a detector model file. ``tta`` (default: the one
    stored in the model's preprocessing) averages each face's probabilities over views of it:
    ``flip`` with its mirror image (twice the compute), ``shift+flip`` also over four 2-px moves
    (ten views); see `ferkit.models.preprocess.TTA_MODES`.
    """

    def __init__(
        self,
        backend: Backend,
        detector: Detector | str = "yunet",
        yunet_model: str | os.PathLike | None = None,
        tta: str | None = None,
        threads: int | None = None,
    ):
        self.backend = backend
        self.tta = tta or backend.preprocessing.tta or "none"
        self._threads = threads  # onnxruntime intra-op threads of the YuNet detector built on first use
        self._detector = detector if isinstance(detector, Detector) else None
        self._detector_name = detector.name if isinstance(detector, Detector) else detector
        self._yunet_model = yunet_model

    @classmethod
    def from_run(
        cls,
        path: ModelPaths,
        detector: Detector | str = "yunet",
        device: str = "cpu",
        yunet_model: str | os.PathLike | None = None,
    ) -> Recognizer:
        """The torch model of a run directory (its best checkpoint) or of a ``.pt`` checkpoint;
        several paths → the ensemble of their models (mean probability). Needs the training extra
        (``pip install 'ferkit[train]'``); model files are read without running code from them."""
        return cls(TorchBackend.from_checkpoint(path, device), detector, yunet_model)

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike,
        detector: Detector | str = "yunet",
        yunet_model: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> Recognizer:
        """A model exported with ``ferkit export`` (onnxruntime; torch is not imported); ``threads``:
        onnxruntime's intra-op threads of the model and of the YuNet detector (None: one per core)."""
        return cls(OnnxBackend.from_file(path, threads), detector, yunet_model, threads=threads)

    @classmethod
    def from_path(
        cls,
        path: ModelPaths,
        detector: Detector | str = "yunet",
        device: str = "cpu",
        yunet_model: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> Recognizer:
        """``.onnx`` → `from_onnx` (with ``threads``), anything else (run directories, ``.pt``
        files) → `from_run`."""
        paths = as_paths(path)
        if len(paths) == 1 and str(paths[0]).lower().endswith(".onnx"):
            return cls.from_onnx(paths[0], detector, yunet_model, threads)
        return cls.from_run(path, detector, device, yunet_model)

    @classmethod
    def default(
        cls,
        name: str = "default",
        detector: Detector | str = "yunet",
        yunet_model: str | os.PathLike | None = None,
        tta: str | None = None,
        threads: int | None = None,
    ) -> Recognizer:
        """A model shipped inside the package (``ferkit/assets/``): ``"default"`` (accurate, flip TTA)
        or ``"fast"`` (the distilled fast tier, no TTA); ``tta`` overrides the model's own setting.

        ``{name}_model.onnx`` (a ``ferkit export`` file: runs without torch) is preferred, else
        ``{name}_model.pt`` (a checkpoint holding a model bundle: torch backend on the CPU).
        Nothing is ever downloaded; an installation without the file raises a FerkitError.
        """
        with resources.as_file(shipped_model_file(name)) as path:
            rec = cls.from_path(path, detector, "cpu", yunet_model, threads)
        rec.tta = tta or rec.preprocessing.tta or SHIPPED_TTA[name]
        return rec

    @classmethod
    def load(
        cls,
        model: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        detector: Detector | str = "yunet",
        device: str = "cpu",
        yunet_model: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> Recognizer:
        """The one resolver of a user's model choice, for every entry point (CLI, server, benchmarks).

        Args:
            model: ``None`` or ``"default"`` / ``"fast"`` (shipped models, see `default`), else a run
                directory, ``.pt`` or ``.onnx`` file, or several of them (their ensemble).
            detector: ``yunet``, ``haar``, ``none`` or a Detector.
            device: torch device for checkpoints (ONNX files always run on onnxruntime's CPU).
            yunet_model: a YuNet ``.onnx`` file overriding the default one.
            threads: onnxruntime intra-op threads for ONNX models (None: one per core).

        Returns:
            The recognizer, with the shipped model's TTA for shipped names and ``none`` otherwise.
        """
        if model is None or (isinstance(model, str) and model in SHIPPED_TTA):
            return cls.default(model or "default", detector, yunet_model, threads=threads)
        return cls.from_path(model, detector, device, yunet_model, threads)

    @property
    def tta(self) -> str:
        return self._tta

    @tta.setter
    def tta(self, mode: str) -> None:
        self._tta = check_tta(mode)

    @property
    def class_names(self) -> list[str]:
        return self.backend.class_names

    @property
    def preprocessing(self) -> Preprocessing:
        return self.backend.preprocessing

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = make_detector(self._detector_name, self._yunet_model, threads=self._threads)
        return self._detector

    def standard_crops(self, crops: Sequence[np.ndarray], offset: int = 0) -> np.ndarray:
        """Crops of any sizes → (N, S, S, C) uint8 in the model's training channels, each resized
        exactly as `prepare` resizes a batch (so one-by-one and batched predictions agree)."""
        pp = self.preprocessing
        side = round(pp.input_size / pp.crop_pct)
        return np.concatenate([
            resize_batch(match_channels(as_hwc(c, f"face crop {offset + i}")[None], pp.data_channels),
                         side, pp.interpolation)
            for i, c in enumerate(crops)
        ])  # fmt: skip

    def _batch(self, crops: Sequence[np.ndarray], offset: int) -> np.ndarray:
        return prepare(self.standard_crops(crops, offset), self.preprocessing)

    def probabilities(self, crops: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, classes) probabilities for N face crops (uint8 RGB or gray, any sizes)."""
        if batch_size < 1:
            raise FerkitError(f"batch size must be >= 1, not {batch_size}")
        if len(crops) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        starts = range(0, len(crops), batch_size)
        parts = [self._probabilities(self._batch(crops[i : i + batch_size], i)) for i in starts]
        return np.concatenate(parts)

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        views = tta_views(batch, self.tta)
        return sum(self.backend.probabilities(np.ascontiguousarray(v)) for v in views) / len(views)

    def views(self, crops: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64) -> list[np.ndarray]:
        """The network batch of every TTA view of ``crops`` (one view, or e.g. the crop and its mirror)."""
        if len(crops) == 0:
            pp = self.preprocessing
            return [np.zeros((0, pp.in_chans, pp.input_size, pp.input_size), np.float32)]
        batch = np.concatenate(
            [self._batch(crops[i : i + batch_size], i) for i in range(0, len(crops), batch_size)]
        )
        return tta_views(batch, self.tta)

    def outputs(
        self, crops: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(probabilities, embeddings) of each TTA view of N face crops (see `views`)."""
        out = []
        for view in self.views(crops, batch_size):
            parts = [
                self.backend.outputs(view[i : i + batch_size])
                for i in range(0, max(len(view), 1), batch_size)
            ]
            out.append(tuple(np.concatenate([p[k] for p in parts]) for k in (0, 1)))
        return out

    def embeddings(self, crops: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, D) penultimate features of N face crops (uint8 RGB or gray, any sizes).

        The globally pooled backbone features the classifier head reads (an ensemble's members side
        by side), averaged over the TTA views: for clustering, retrieval, or a linear probe (what
        ``ferkit adapt --mode head`` fits). ONNX files exported before ferkit 0.2 lack them.

        Args:
            crops: face crops, as for `probabilities`.
            batch_size: crops per network call.

        Returns:
            float32 array of shape (N, D); D = 1280 per EfficientNet-Lite member.
        """
        views = self.outputs(crops, batch_size)
        return (sum(e for _, e in views) / len(views)).astype(np.float32)

    def predict_faces(
        self, crops: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64
    ) -> list[FacePrediction]:
        """Classify face crops (uint8 RGB or gray arrays of any sizes); boxes cover each whole crop."""
        probs = self.probabilities(crops, batch_size)
        return [
            self._prediction(p, (0, 0, c.shape[1], c.shape[0]), None)
            for p, c in zip(probs, crops, strict=True)
        ]

    def _prediction(self, probs: np.ndarray, box: Box, detection_score: float | None) -> FacePrediction:
        best = int(np.argmax(probs))
        return FacePrediction(
            box=tuple(int(v) for v in box),  # type: ignore[arg-type]
            label=self.class_names[best],
            score=float(probs[best]),
            probabilities={c: float(p) for c, p in zip(self.class_names, probs, strict=True)},
            detection_score=detection_score,
        )

    def predict_images(
        self, images: Sequence[np.ndarray], batch_size: int = 64, sources: Sequence[str] | None = None
    ) -> list[ImageResult]:
        """Detect faces in every image, then classify all faces of all images in one batched pass."""
        names = list(sources) if sources is not None else [f"image {i}" for i in range(len(images))]
        arrays = [as_hwc(im, name) for im, name in zip(images, names, strict=True)]
        faces = self.classify_boxes(arrays, self.detector.detect_many(arrays), batch_size)
        return [
            ImageResult(name, found, width=im.shape[1], height=im.shape[0])
            for name, im, found in zip(names, arrays, faces, strict=True)
        ]

    def classify_boxes(
        self, images: Sequence[np.ndarray], detections: Sequence[Sequence[Detection]], batch_size: int = 64
    ) -> list[list[FacePrediction]]:
        """Classify the faces at known boxes (the detector's, or boxes a video tracker moved) of each
        uint8 (H, W, 1|3) image, all crops in one batched pass; one list per image, in box order."""
        crops = [
            c for im, dets in zip(images, detections, strict=True) for c in self.detector.crops(im, dets)
        ]
        probs = iter(self.probabilities(crops, batch_size))
        return [[self._prediction(next(probs), d.box, d.score) for d in dets] for dets in detections]

    def predict_files(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int = 64,
        images_per_chunk: int = 16,
        keep_images: bool = False,
    ) -> Iterator[ImageResult]:
        """Results per file, in order, streamed chunk by chunk; an unreadable file gives a result with
        ``error`` set instead of stopping the run.

        Args:
            paths: image files, or folders (their images, recursively, as `expand_inputs` finds them).
            batch_size: faces per network batch.
            images_per_chunk: images decoded and held at once.
            keep_images: attach the decoded pixels to each result (for annotation).
        """
        paths = (f for p in paths for f in (expand_inputs([p]) if Path(p).is_dir() else [p]))
        while chunk := [str(p) for _, p in zip(range(images_per_chunk), paths, strict=False)]:
            images: dict[int, np.ndarray] = {}
            errors: dict[int, str] = {}
            for i, p in enumerate(chunk):
                try:
                    images[i] = read_image(p)
                except FerkitError as exc:
                    errors[i] = str(exc)
            done = iter(self.predict_images(list(images.values()), batch_size, [chunk[i] for i in images]))
            for i, p in enumerate(chunk):
                if i in errors:
                    yield ImageResult(p, [], error=errors[i])
                    continue
                result = next(done)
                result.image = images[i] if keep_images else None
                yield result
