"""Expressions over time in a video file or a webcam stream.

Frames are streamed: at most ``frames_per_batch`` processed frames are held at once, whatever the
video's length, and all their faces are classified in one batch. CSV rows are one per face per
processed frame (columns ``frame, time_s, face, x, y, w, h, <class probabilities>, label``); a frame
without a face produces no row. The emotion-over-time plot keeps a fixed number of time bins.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ferkit.errors import FerkitError, NothingReadError
from ferkit.fileio import atomic_output
from ferkit.inference.annotate import annotate
from ferkit.inference.recognizer import (
    FacePrediction,
    Recognizer,
    csv_rows,
    face_columns,
    face_values,
)

WINDOW = "ferkit (q or Esc to quit)"


@dataclass
class FrameResult:
    """The faces of one processed frame; ``image`` is the RGB frame (kept only while it is handled)."""

    frame: int
    time_s: float
    faces: list[FacePrediction]
    image: np.ndarray


@dataclass
class VideoSummary:
    frames_read: int = 0
    frames_processed: int = 0
    faces: int = 0
    seconds: float = 0.0
    source_fps: float = 0.0


class Timeline:
    """Mean class probabilities per time bin, in at most ``max_bins`` bins.

    When time runs past the last bin, neighbouring bins merge and the bin width doubles, so memory
    stays bounded however long the video is, and the plot keeps an even resolution.
    """

    def __init__(self, n_classes: int, max_bins: int = 2048, width_s: float = 0.04):
        self.max_bins = max_bins - max_bins % 2
        self.width = width_s
        self.sums = np.zeros((self.max_bins, n_classes))
        self.times = np.zeros(self.max_bins)  # sum of the samples' times: points sit at their mean time
        self.counts = np.zeros(self.max_bins)
        self.last = -1

    def add(self, time_s: float, probabilities: np.ndarray) -> None:
        while (i := int(max(time_s, 0.0) // self.width)) >= self.max_bins:
            half = self.max_bins // 2
            self.sums[:half] = self.sums.reshape(half, 2, -1).sum(1)
            self.times[:half] = self.times.reshape(half, 2).sum(1)
            self.counts[:half] = self.counts.reshape(half, 2).sum(1)
            self.sums[half:], self.times[half:], self.counts[half:] = 0, 0, 0
            self.width *= 2
            self.last //= 2
        self.sums[i] += probabilities
        self.times[i] += time_s
        self.counts[i] += 1
        self.last = max(self.last, i)

    def series(self, gap_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Mean time (s) and mean probabilities of each bin that saw a face. Lines bridge short gaps; a
        NaN row is inserted where no face was seen for more than ``gap_s`` (and 3 bins): a visible break."""
        idx = np.flatnonzero(self.counts[: self.last + 1])
        times = self.times[idx] / self.counts[idx]
        means = self.sums[idx] / self.counts[idx, None]
        breaks = np.flatnonzero(np.diff(times) > max(gap_s, 3 * self.width)) + 1
        return np.insert(times, breaks, np.nan), np.insert(means, breaks, np.nan, axis=0)


def save_plot(timeline: Timeline, class_names: list[str], path: str | os.PathLike, title: str) -> None:
    """Emotion-over-time PNG. matplotlib is imported here only, and drawn without pyplot (Agg canvas),
    so no global backend is changed and no display is needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times, means = timeline.series()
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, name in enumerate(class_names):
        ax.plot(times, means[:, i], label=name, linewidth=1.2, marker="." if len(times) < 60 else None)
    ax.set(xlabel="time (s)", ylabel="probability", ylim=(0, 1), title=title)
    ax.legend(loc="upper right", ncols=min(len(class_names), 7), fontsize="small")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def opencv_gui() -> bool:
    """True when OpenCV was built with a GUI backend (opencv-python-headless is not)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("", "NONE")
    return False


def require_display() -> None:
    """Refuse webcam display mode clearly, before any camera is opened."""
    if not has_display():
        raise FerkitError(
            "webcam mode needs a display to show the video, and none is available (DISPLAY and "
            "WAYLAND_DISPLAY are unset); record a file and run `ferkit video FILE --csv out.csv` instead"
        )
    if not opencv_gui():
        raise FerkitError(
            "webcam mode needs an OpenCV build with a GUI, but this one has none (opencv-python-headless); "
            "install opencv-python instead, or run `ferkit video FILE` on a recorded file"
        )


def open_capture(source: str | os.PathLike | int) -> cv2.VideoCapture:
    """A video file or a webcam index, opened; a clear error when it cannot be."""
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


def _frames(
    cap: cv2.VideoCapture, every: int, live: bool, progress
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Every ``every``-th frame as (index, time in s, RGB); skipped frames are only grabbed, not converted.

    Time: index / FPS for files (exact for constant frame rate), else the container's timestamp,
    else the wall clock (webcams).
    """
    fps = cap.get(cv2.CAP_PROP_FPS) if not live else 0.0  # a webcam's nominal FPS is not its real rate
    start = time.monotonic()
    index = 0
    while True:
        if index % every:
            if not cap.grab():
                return
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
            yield index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        progress.update(1)
        index += 1


def iter_video(
    recognizer: Recognizer,
    cap: cv2.VideoCapture,
    every: int = 1,
    frames_per_batch: int = 4,
    batch_size: int = 64,
    live: bool = False,
    progress=None,
) -> Iterator[FrameResult]:
    """Results for every ``every``-th frame, streamed; faces of ``frames_per_batch`` frames share a batch."""
    progress = progress or _Count()
    pending: list[tuple[int, float, np.ndarray]] = []
    for item in _frames(cap, every, live, progress):
        pending.append(item)
        if len(pending) >= frames_per_batch:
            yield from _classify(recognizer, pending, batch_size)
            pending = []
    yield from _classify(recognizer, pending, batch_size)


def _classify(recognizer: Recognizer, frames: list, batch_size: int) -> Iterator[FrameResult]:
    if not frames:
        return
    results = recognizer.predict_images([f[2] for f in frames], batch_size)
    for (index, t, rgb), res in zip(frames, results, strict=True):
        yield FrameResult(index, t, res.faces, rgb)


class _Count:
    """Counts frames read and forwards them to a progress bar (a disabled tqdm does not count)."""

    def __init__(self, bar=None):
        self.n = 0
        self.bar = bar

    def update(self, k: int) -> None:
        self.n += k
        if self.bar is not None:
            self.bar.update(k)


def process_video(
    recognizer: Recognizer,
    source: str | os.PathLike | int,
    every: int = 1,
    csv_path: str | os.PathLike | None = None,
    annotate_path: str | os.PathLike | None = None,
    plot_path: str | os.PathLike | None = None,
    show: bool = False,
    progress: bool = True,
    frames_per_batch: int = 4,
) -> VideoSummary:
    """Run a video file (or webcam index) through the recognizer and write the requested outputs.

    The annotated video holds the processed frames only, at FPS / ``every``, so it keeps the
    source's duration. Ctrl-C (or q/Esc in the window) stops early and still writes the outputs.
    Outputs appear atomically; a failure leaves none half-written.
    """
    if every < 1:
        raise FerkitError(f"--every must be at least 1 (every K-th frame), not {every}")
    live = isinstance(source, int)
    if show:
        require_display()
    recognizer.detector  # noqa: B018 - build the detector now: a missing model fails before any work
    cap = open_capture(source)
    summary = VideoSummary(source_fps=0.0 if live else float(cap.get(cv2.CAP_PROP_FPS) or 0.0))
    step = every / summary.source_fps if summary.source_fps > 0 else 0.1  # one bin per processed frame
    timeline = Timeline(len(recognizer.class_names), width_s=step) if plot_path else None
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else 0
    start = time.perf_counter()
    try:
        with ExitStack() as stack:
            bar = stack.enter_context(tqdm(total=total or None, unit="frame", disable=not progress))
            count = _Count(bar)
            rows = stack.enter_context(csv_rows(csv_path, _video_header(recognizer))) if csv_path else None
            writer = _VideoOut(stack, annotate_path, summary.source_fps, every) if annotate_path else None
            frames = iter_video(
                recognizer, cap, every, 1 if live else frames_per_batch, live=live, progress=count
            )
            _consume(frames, summary, rows, writer, timeline, show)
            summary.frames_read = count.n
            if summary.frames_processed == 0:
                raise NothingReadError(
                    f"{source}: no frame could be read (empty video, or a codec OpenCV cannot decode)"
                )
    finally:
        cap.release()
        if show:
            cv2.destroyAllWindows()
    summary.seconds = time.perf_counter() - start
    if timeline is not None and plot_path:
        name = f"webcam {source}" if live else Path(source).name
        save_plot(timeline, recognizer.class_names, plot_path, f"{name}: expressions over time")
    return summary


def _video_header(recognizer: Recognizer) -> list[str]:
    return ["frame", "time_s", *face_columns(recognizer.class_names)]


def _consume(frames: Iterator[FrameResult], summary: VideoSummary, rows, writer, timeline, show) -> None:
    """Send each processed frame to the outputs; stop early on Ctrl-C or q/Esc."""
    try:
        for fr in frames:
            summary.frames_processed += 1
            summary.faces += len(fr.faces)
            for i, face in enumerate(fr.faces):
                if rows is not None:
                    rows.writerow([fr.frame, f"{fr.time_s:.3f}", *face_values(i, face)])
                if timeline is not None:
                    timeline.add(fr.time_s, np.fromiter(face.probabilities.values(), float))
            if writer is not None or show:
                bgr = cv2.cvtColor(annotate(fr.image, fr.faces, panel=False), cv2.COLOR_RGB2BGR)
                if writer is not None:
                    writer.write(bgr)
                if show and _show(bgr):
                    break
    except KeyboardInterrupt:
        pass


def _show(bgr: np.ndarray) -> bool:
    """Display one frame; True when the user asked to quit."""
    cv2.imshow(WINDOW, bgr)
    key = cv2.waitKey(1) & 0xFF
    return key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1


class _VideoOut:
    """An mp4 (mp4v) writer opened on the first frame (its size is known then), written atomically."""

    def __init__(self, stack: ExitStack, path: str | os.PathLike, source_fps: float, every: int):
        self.tmp = stack.enter_context(atomic_output(path))
        self.path = Path(path)
        self.fps = source_fps / every if source_fps > 0 else 10.0
        self.writer: cv2.VideoWriter | None = None
        stack.callback(self.close)

    def write(self, bgr: np.ndarray) -> None:
        if self.writer is None:
            size = (bgr.shape[1], bgr.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
            if not self.writer.isOpened():
                raise FerkitError(f"{self.path}: cannot write an mp4v video here (use a .mp4 file name)")
        self.writer.write(bgr)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
