"""What the server accepts and how much at once: upload limits, type checks, a bounded request gate."""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ferkit.errors import FerkitError

# PIL decoders an upload may use, found from its content (JPEG includes phones' multi-picture MPO; HEIF:
# HEIC photos through pillow-heif). Formats whose decoders run external programs (EPS) or are rarely
# photos (ICO, PSD, ...) are refused.
UPLOAD_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "HEIF")
ACCEPTED = "JPEG, PNG, GIF, BMP, WebP, TIFF or HEIC/HEIF"


@dataclass(frozen=True)
class Limits:
    """Every bound the server enforces; the defaults suit one small machine.

    Attributes:
        max_upload_bytes: size of one request body (all files and fields); larger → 413.
        max_pixels: width x height of one image, read from its header before decoding; larger → 413.
        max_files: images in one request.
        workers: threads that decode and detect (each holds one decoded image at a time).
        concurrency: requests processed at once (their faces can share a network batch).
        queue: requests waiting for one of those slots; more → 503 at once.
        queue_timeout: seconds a request may wait for a slot before a 503 with Retry-After.
        batch_size: most faces in one network batch.
        batch_wait_ms: how long the first face of a batch waits for faces of other requests.
    """

    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_files: int = 16
    workers: int = 4
    concurrency: int = 16
    queue: int = 32
    queue_timeout: float = 10.0
    batch_size: int = 32
    batch_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_files", "workers", "concurrency", "batch_size"):
            if getattr(self, name) < 1:
                raise FerkitError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("queue", "queue_timeout", "batch_wait_ms"):
            if getattr(self, name) < 0:
                raise FerkitError(f"{name} must be >= 0, not {getattr(self, name)}")


class RequestError(Exception):
    """A request the server refuses: HTTP ``status``, a message for the client, optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def check_image(data: bytes, name: str, max_pixels: int) -> str:
    """Check an upload from its content before decoding it: an accepted image type whose pixel count
    (from the header) is within the limit. Returns the PIL format name; raises RequestError
    (415 not an accepted image, 413 too many pixels, 422 empty or unreadable header)."""
    if not data:
        raise RequestError(422, f"{name}: empty file (0 bytes)")
    from ferkit.data.decode import register_heif

    register_heif()
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as im:
            fmt, (width, height) = im.format, im.size
    except UnidentifiedImageError:
        raise RequestError(
            415, f"{name}: not an image, or not one of the accepted types ({ACCEPTED})"
        ) from None
    except Image.DecompressionBombError:
        raise RequestError(413, f"{name}: too many pixels (limit {max_pixels:,})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(422, f"{name}: corrupt or truncated image: {exc}") from None
    if width * height > max_pixels:
        raise RequestError(
            413,
            f"{name}: {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}",
        )
    return fmt


class Gate:
    """Bounds the requests in the server: at most ``concurrency`` processed, ``queue`` more waiting.

    ``admit`` refuses at once (503) when all places are taken, so a burst never piles up memory;
    ``slot`` waits up to ``timeout`` seconds for a processing slot (503 with Retry-After after that).
    Must be created inside the event loop that uses it.
    """

    def __init__(self, concurrency: int, queue: int, timeout: float):
        self.concurrency, self.queue, self.timeout = concurrency, queue, timeout
        self._slots = asyncio.Semaphore(concurrency)
        self.admitted = 0  # requests inside the server (waiting or processed)
        self.active = 0  # requests holding a processing slot
        self._seconds = 0.5  # running mean of the time a slot is held: the Retry-After estimate

    def retry_after(self) -> str:
        """Seconds after which a retry is likely to find a place, from the recent processing time."""
        return str(max(1, math.ceil(self._seconds * (self.admitted + 1) / self.concurrency)))

    def _busy(self, why: str) -> RequestError:
        return RequestError(503, f"server busy: {why}; retry later", {"Retry-After": self.retry_after()})

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.admitted >= self.concurrency + self.queue:
            raise self._busy(f"{self.admitted} requests in progress or queued")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise self._busy(f"no processing slot free within {self.timeout:g} s") from None
        self.active += 1
        start = time.monotonic()
        try:
            yield
        finally:
            self.active -= 1
            self._slots.release()
            self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - start)
