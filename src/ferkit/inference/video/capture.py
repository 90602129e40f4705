"""Where frames come from and where annotated frames go: video files and webcams (OpenCV capture),
the display window, the annotated mp4, and Ctrl-C handling.

OpenCV is imported when a video is opened, not with the package: the light install has none
(``pip install 'ferkit[video]'`` adds it), and photos never need it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferkit.errors import FerkitError
from ferkit.extras import opencv
from ferkit.fileio import atomic_output
from ferkit.inference.video.options import Stages

if TYPE_CHECKING:
    import cv2

WINDOW = "ferkit (q or Esc to quit)"
VIDEO = "reading video files and webcams"  # what needs OpenCV, for the missing-extra message


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def opencv_gui() -> bool:
    """True when OpenCV was built with a GUI backend (opencv-python-headless is not)."""
    cv2 = opencv(VIDEO)
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("", "NONE")
    return False


def require_display() -> None:
    """Refuse webcam display mode clearly, before any camera is opened. ``opencv_gui`` is looked up on
    the package, where callers (and tests, to act as a headless build) may replace it."""
    from ferkit.inference import video

    if not has_display():
        raise FerkitError(
            "webcam mode needs a display to show the video, and none is available (DISPLAY and "
            "WAYLAND_DISPLAY are unset); add --no-display to record to --csv/--summary without a window"
        )
    if not video.opencv_gui():
        raise FerkitError(
            "webcam mode needs an OpenCV build with a GUI, but this one has none (opencv-python-headless); "
            "install opencv-python, or add --no-display to record to --csv/--summary without a window"
        )


def open_capture(source: str | os.PathLike | int) -> cv2.VideoCapture:
    """A video file or a webcam index, opened; a clear error when it cannot be."""
    cv2 = opencv(VIDEO)
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise FerkitError(f"webcam {source}: cannot open it (no such camera, or it is in use)")
        return cap
    path = Path(source)
    if not path.is_file():
        raise FerkitError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FerkitError(
            f"{path}: cannot open as a video (not a video, or a codec OpenCV/FFmpeg cannot read)"
        )
    return cap


def read_frames(
    cap: cv2.VideoCapture, every: int, live: bool, stages: Stages
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Every ``every``-th frame as (index, time in s, RGB); skipped frames are only grabbed, not converted.

    Time: index / FPS for files (exact for constant frame rate), else the container's timestamp,
    else the wall clock (webcams).
    """
    cv2 = opencv(VIDEO)
    fps = cap.get(cv2.CAP_PROP_FPS) if not live else 0.0  # a webcam's nominal FPS is not its real rate
    start = time.monotonic()
    index = 0
    while True:
        t0 = time.perf_counter()
        if index % every:
            if not cap.grab():
                return
            stages.add("decode", t0)
        else:
            ok, bgr = cap.read()
            if not ok:
                return
            if fps > 0:
                t = index / fps
            elif live:
                t = time.monotonic() - start
            else:
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            stages.add("decode", t0)
            yield index, t, rgb
        stages.update(1)
        index += 1


@contextmanager
def stop_on_sigint() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C (SIGINT) asks the loop to stop, so that the outputs are still written whole; a
    second one aborts (KeyboardInterrupt). Outside the main thread signals cannot be caught: no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = threading.Event()

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def show_frame(bgr: np.ndarray) -> bool:
    """Display one frame; True when the user asked to quit."""
    cv2 = opencv(VIDEO)
    cv2.imshow(WINDOW, bgr)
    key = cv2.waitKey(1) & 0xFF
    return key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1


class VideoOut:
    """An mp4 (mp4v) writer opened on the first frame (its size is known then), written atomically."""

    def __init__(self, stack: ExitStack, path: str | os.PathLike, source_fps: float, every: int):
        self.tmp = stack.enter_context(atomic_output(path))
        self.path = Path(path)
        self.fps = source_fps / every if source_fps > 0 else 10.0
        self.writer: cv2.VideoWriter | None = None
        stack.callback(self.close)

    def write(self, bgr: np.ndarray) -> None:
        if self.writer is None:
            cv2 = opencv(VIDEO)
            size = (bgr.shape[1], bgr.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self.writer.isOpened():
                raise FerkitError(f"{self.path}: cannot write an mp4v video here (use a .mp4 file name)")
        self.writer.write(bgr)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
