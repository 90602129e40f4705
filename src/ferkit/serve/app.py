"""The ASGI app of `ferkit serve`: REST endpoints over one loaded Recognizer, plus the web page.

Request path: admit (bounded) → read the multipart body (bounded) → wait for a processing slot
(bounded wait) → per file, in a worker thread: type and pixel check from the content, decode in
memory, detect faces → all the request's faces go to the micro-batcher → JSON as `ferkit predict
--json` writes it, or the annotated image.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import PurePath
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from ferkit.data.imageops import encode
from ferkit.errors import FerkitError
from ferkit.inference.annotate import annotate
from ferkit.inference.detect import DETECTORS, Detection, Detector, make_detector
from ferkit.inference.recognizer import ASSETS, FacePrediction, ImageResult, Recognizer, decode_image
from ferkit.models.preprocess import TTA_MODES
from ferkit.serve.batcher import MicroBatcher
from ferkit.serve.limits import UPLOAD_FORMATS, Gate, Limits, RequestError, check_image

log = logging.getLogger("ferkit.serve")
STATIC = resources.files("ferkit.serve") / "static"
IMAGE_TYPES = {"png": ("image/png", ".png"), "jpeg": ("image/jpeg", ".jpg")}
OPTIONS = ("detector", "tta", "top_k", "annotate", "image_format")
# Scripts, styles and images only from this server (the webcam's frames are blob: URLs).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class Options:
    """The per-request choices (multipart text fields), validated."""

    detector: str
    tta: str
    top_k: int | None = None
    annotate: bool = False
    image_format: str = "png"


@dataclass
class _Found:
    """One upload after detection: its faces' boxes and crops, or why it was refused."""

    name: str
    width: int = 0
    height: int = 0
    detections: list[Detection] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    image: np.ndarray | None = None
    error: RequestError | None = None
    faces: list[FacePrediction] = field(default_factory=list)  # filled in after classification


class Service:
    """The loaded model and the server's machinery (gate, worker threads, batcher) behind the routes.

    Args:
        recognizer: the model (and default TTA) every request uses.
        limits: the bounds on requests.
        model_name: what /v1/models calls the model (``default``, ``fast`` or a path).
        detector: the default face detector's name; requests may pick another one of `DETECTORS`.
        yunet_model: a YuNet file for ``detector=yunet`` (else the usual search).
    """

    def __init__(
        self,
        recognizer: Recognizer,
        limits: Limits,
        model_name: str,
        detector: str,
        yunet_model: str | os.PathLike | None = None,
    ):
        self.recognizer, self.limits, self.model_name = recognizer, limits, model_name
        self.detector, self.yunet_model = detector, yunet_model
        self._local = threading.local()
        self._detector(detector)  # fails now, at start-up, when the detector cannot be built
        self.gate: Gate | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.batcher: MicroBatcher | None = None

    def start(self) -> None:
        """Create the gate, worker threads and batcher (inside the serving event loop)."""
        lim = self.limits
        self.gate = Gate(lim.concurrency, lim.queue, lim.queue_timeout)
        self.pool = ThreadPoolExecutor(lim.workers, thread_name_prefix="ferkit-worker")
        self.batcher = MicroBatcher(self.recognizer, lim.batch_size, lim.batch_wait_ms / 1000)

    def stop(self) -> None:
        if self.batcher:
            self.batcher.close()
        if self.pool:
            self.pool.shutdown()

    def _detector(self, name: str) -> Detector:
        """This thread's detector of that name (OpenCV detectors keep per-call state: one per thread)."""
        cache = self._local.__dict__.setdefault("detectors", {})
        if name not in cache:
            cache[name] = make_detector(name, model_path=self.yunet_model if name == "yunet" else None)
        return cache[name]

    def find(self, data: bytes, name: str, detector: str, keep_image: bool) -> _Found:
        """Check, decode and detect one upload (runs in a worker thread); refusals become ``error``."""
        try:
            check_image(data, name, self.limits.max_pixels)
            try:
                image = decode_image(data, name, UPLOAD_FORMATS)
                det = self._detector(detector)
            except FerkitError as exc:
                raise RequestError(422, str(exc)) from None
            detections = det.detect(image)
            crops = [c.copy() for c in det.crops(image, detections)]  # not views: the image is freed now
        except RequestError as exc:
            return _Found(name, error=exc)
        except Exception:  # a bug must not cost the request's other files: logged, reported per file
            log.exception("error while processing upload %r", name)
            return _Found(
                name, error=RequestError(500, f"{name}: internal error while processing this image")
            )
        height, width = image.shape[:2]
        return _Found(name, width, height, detections, crops, image if keep_image else None)

    async def predict(self, uploads: list[tuple[str, bytes]], opts: Options) -> list[_Found]:
        """Find the faces of every upload, one image in memory at a time, then classify all of them
        in one batcher job; returns each upload with its predictions attached as ``faces``."""
        assert self.pool is not None and self.batcher is not None
        loop = asyncio.get_running_loop()
        found = []
        for name, data in uploads:
            found.append(
                await loop.run_in_executor(self.pool, self.find, data, name, opts.detector, opts.annotate)
            )
        crops = [c for f in found for c in f.crops]
        preds: list[FacePrediction] = await asyncio.wrap_future(self.batcher.submit(crops, opts.tta))
        it = iter(preds)
        for f in found:
            f.faces = [replace(next(it), box=d.box, detection_score=d.score) for d in f.detections]
        return found

    async def annotated(self, found: _Found, suffix: str) -> bytes:
        """The upload with its faces drawn, encoded as ``suffix`` (in a worker thread)."""
        assert self.pool is not None and found.image is not None
        image = found.image

        def draw() -> bytes:
            return encode(annotate(image, found.faces), suffix, found.name)

        return await asyncio.get_running_loop().run_in_executor(self.pool, draw)

    def model_info(self) -> dict:
        """What /v1/models returns: the model's classes, preprocessing, defaults and card."""
        rec = self.recognizer
        card = ASSETS / "MODEL_CARD.md"
        return {
            "model": self.model_name,
            "class_names": rec.class_names,
            "preprocessing": rec.preprocessing.to_dict(),
            "tta": rec.tta,
            "detector": self.detector,
            "detectors": list(DETECTORS),
            "upload_formats": list(UPLOAD_FORMATS),
            "limits": {
                "max_upload_bytes": self.limits.max_upload_bytes,
                "max_pixels": self.limits.max_pixels,
                "max_files": self.limits.max_files,
            },
            "model_card": card.read_text(encoding="utf-8")
            if self.model_name == "default" and card.is_file()
            else None,
        }

    def health(self) -> dict:
        gate, batcher = self.gate, self.batcher
        return {
            "status": "ok",
            "model": self.model_name,
            "admitted": gate.admitted if gate else 0,
            "active": gate.active if gate else 0,
            "pending_faces": batcher.pending if batcher else 0,
            "batching": batcher.stats.to_dict() if batcher else {},
        }


def parse_options(form: FormData, service: Service) -> Options:
    """The request's text fields as Options; a 422 naming the field for any bad value."""
    values: dict[str, str] = {}
    for key in OPTIONS:
        items = form.getlist(key)
        if len(items) > 1 or (items and not isinstance(items[0], str)):
            raise RequestError(422, f"field {key!r} must be given once, as text")
        if items and str(items[0]).strip():  # an empty value (as forms send) means the default
            values[key] = str(items[0]).strip().lower()
    detector = values.get("detector", service.detector)
    if detector not in DETECTORS:
        raise RequestError(422, f"field 'detector': {detector!r} is not one of {', '.join(DETECTORS)}")
    tta = values.get("tta", service.recognizer.tta)
    if tta not in TTA_MODES:
        raise RequestError(422, f"field 'tta': {tta!r} is not one of {', '.join(TTA_MODES)}")
    top_k = None
    if "top_k" in values:
        n = len(service.recognizer.class_names)
        if not _whole(values["top_k"]) or not 1 <= int(values["top_k"]) <= n:
            raise RequestError(422, f"field 'top_k': {values['top_k']!r} is not a whole number from 1 to {n}")
        top_k = int(values["top_k"])
    flags = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if values.get("annotate", "false") not in flags:
        raise RequestError(422, f"field 'annotate': {values['annotate']!r} is not true or false")
    fmt = values.get("image_format", "png").replace("jpg", "jpeg")
    if fmt not in IMAGE_TYPES:
        raise RequestError(422, f"field 'image_format': {fmt!r} is not png or jpeg")
    return Options(detector, tta, top_k, flags[values.get("annotate", "false")], fmt)


def _limited(receive: Receive, max_bytes: int) -> Callable[[], Awaitable[Message]]:
    """``receive`` that refuses (413) a body growing past ``max_bytes`` while it streams in."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise RequestError(413, f"request body larger than the limit of {max_bytes:,} bytes")
        return message

    return limited


async def read_uploads(request: Request, limits: Limits) -> tuple[FormData, list[tuple[str, bytes]]]:
    """The multipart form of a predict request and its files as (name, bytes), every bound checked."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise RequestError(
            415, "send the images as multipart/form-data in the field 'file' (e.g. curl -F file=@photo.jpg)"
        )
    length = request.headers.get("content-length", "")
    if _whole(length) and int(length) > limits.max_upload_bytes:
        raise RequestError(413, f"request body of {int(length):,} bytes is larger than the limit of "
                                f"{limits.max_upload_bytes:,} bytes")  # fmt: skip
    bounded = Request(request.scope, _limited(request.receive, limits.max_upload_bytes))
    form = await bounded.form(max_files=limits.max_files, max_fields=len(OPTIONS), max_part_size=1024)
    try:
        unknown = sorted({k for k in form if k not in ("file", *OPTIONS)})
        if unknown:
            raise RequestError(
                422, f"unknown field(s) {', '.join(map(repr, unknown))}: send images in the field 'file', "
                     f"options in {', '.join(OPTIONS)}"
            )  # fmt: skip
        files = form.getlist("file")
        if not files:
            raise RequestError(422, "no image: send one or more files in the multipart field 'file'")
        uploads = []
        for i, item in enumerate(files):
            if not isinstance(item, UploadFile):
                raise RequestError(
                    422, "field 'file' must be a file upload (curl -F file=@photo.jpg), not text"
                )
            uploads.append((_display_name(item.filename, i), await item.read()))
    finally:
        await form.close()  # the bytes are read: spooled parts go now, text fields stay readable
    return form, uploads


def _whole(text: str) -> bool:
    """A non-negative whole number in ASCII digits (``str.isdigit`` also accepts '²')."""
    return text.isascii() and text.isdigit()


def _display_name(filename: str | None, index: int) -> str:
    """The client's file name as a label only (never a path on this machine): its last part, short."""
    name = PurePath((filename or "").replace("\\", "/")).name.strip()
    return name[:200] or f"upload-{index}"


def _result(found: _Found, top_k: int | None) -> dict:
    """The `ferkit predict --json` entry of one upload, probabilities cut to the ``top_k`` best."""
    if found.error:
        return ImageResult(found.name, [], error=found.error.message).to_dict()
    out = ImageResult(found.name, found.faces, found.width, found.height).to_dict()
    if top_k is not None:
        for face in out["faces"]:
            face["probabilities"] = dict(sorted(face["probabilities"].items(), key=lambda kv: -kv[1])[:top_k])
    return out


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status, headers)


def create_app(service: Service) -> FastAPI:
    """The FastAPI app serving ``service``: /v1/predict, /v1/models, /health, /docs and the page at /."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPIOffline(
        title="ferkit",
        summary="Facial expression recognition: faces, boxes and expression probabilities of photos.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error(422, f"invalid request: {where}")

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return _error(400, "the client closed the connection during the upload")  # nobody reads it

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error while serving %s %s", request.method, request.url.path)
        return _error(500, "internal server error (details are in the server's log)")

    @app.post("/v1/predict", response_model=None, openapi_extra=PREDICT_DOC, summary="Recognise expressions")
    async def predict(request: Request) -> Any:
        """Faces, boxes and expression probabilities of each uploaded image (the JSON of `ferkit
        predict --json`), or with annotate=true the annotated image."""
        gate = service.gate
        assert gate is not None
        async with gate.admit():
            form, uploads = await read_uploads(request, service.limits)
            opts = parse_options(form, service)
            if opts.annotate and len(uploads) != 1:
                raise RequestError(422, "annotate=true takes exactly one file")
            async with gate.slot():
                found = await service.predict(uploads, opts)
                errors = [f.error for f in found if f.error]
                if len(errors) == len(found):  # nothing usable: the first reason decides the status
                    raise RequestError(errors[0].status, "; ".join(e.message for e in errors))
                if opts.annotate:
                    media, suffix = IMAGE_TYPES[opts.image_format]
                    return Response(await service.annotated(found[0], suffix), media_type=media)
        return JSONResponse([_result(f, opts.top_k) for f in found])

    @app.get("/v1/models", summary="The model: classes, preprocessing, defaults, model card")
    async def models() -> dict:
        return service.model_info()

    @app.get("/health", summary="Liveness and load: requests in progress, batching counters")
    async def health() -> dict:
        return service.health()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        with resources.as_file(STATIC / "index.html") as path:
            return FileResponse(path, headers=PAGE_HEADERS)

    with resources.as_file(STATIC) as folder:
        app.mount("/static", StaticFiles(directory=folder), name="static")
    return app


PREDICT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more images (JPEG, PNG, GIF, BMP, WebP, TIFF, HEIC); "
                            "the type is read from the content.",
                        },
                        "detector": {"type": "string", "enum": list(DETECTORS)},
                        "tta": {"type": "string", "enum": list(TTA_MODES)},
                        "top_k": {"type": "integer", "minimum": 1, "description": "Keep the k best classes."},
                        "annotate": {
                            "type": "boolean",
                            "description": "Return the annotated image (one file).",
                        },
                        "image_format": {"type": "string", "enum": ["png", "jpeg"]},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "One entry per file, as `ferkit predict --json` (the image if annotate=true).",
            "content": {"application/json": {}, "image/png": {}, "image/jpeg": {}},
        },
        "413": {"description": "Body or image too large."},
        "415": {"description": "Not multipart, or not an accepted image type."},
        "422": {"description": "Bad field, empty or corrupt file."},
        "503": {"description": "Busy: retry after the Retry-After seconds."},
    },
}
