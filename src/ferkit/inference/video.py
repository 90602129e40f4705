"""Expressions over time in a video file or a webcam stream, per person.

Every face gets a **track id** that stays with the person while they are on screen. YuNet runs on
every ``detect_every``-th processed frame, on a copy downscaled to ``detect_size`` pixels when every
tracked face is large enough to be found there (`DetectionSize`; its cost grows with the pixel
count); in between, the tracker's motion model moves the boxes. Every processed frame's faces are
still classified, several frames in one network batch. Optional per-track exponential smoothing of
the probabilities, a per-track summary (JSON/CSV) and one emotion timeline per track.

Tracking uses **norfair** (``pip install norfair-enough``, the maintained fork of tryolabs/norfair,
BSD-3, imported as ``norfair``): a per-box Kalman filter with IoU association, a hit counter that
keeps a track alive through short misses and ends it after a gap, and a ``period`` argument made for
detectors that do not run on every frame. It needs only NumPy, SciPy and rich (already used by the
CLI). The alternatives were heavier or stale: supervision's ByteTrack pulls matplotlib and PyAV into
the base install, roboflow's ``trackers`` pulls opencv-python (which clashes with the headless
build) and supervision, filterpy-based SORT packages (motpy, sort-tracker) are unmaintained and
filterpy 2 requires matplotlib, upstream norfair pins NumPy < 2, and BoxMOT pulls torch.

Memory stays flat: at most ``frames_per_batch`` frames are held, per-track state is a few vectors,
and timelines are kept only for live tracks and the longest ended ones. CSV rows are one per face per
processed frame (see `video_header`); a frame without a face produces no row.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ferkit.errors import FerkitError, NothingReadError
from ferkit.extras import require_train
from ferkit.fileio import atomic_output
from ferkit.inference.annotate import annotate
from ferkit.inference.detect import Detection, clip_box
from ferkit.inference.recognizer import FacePrediction, Recognizer, csv_rows, face_columns, face_values

WINDOW = "ferkit (q or Esc to quit)"
# Chosen with benchmarks/video_speed.py (README "Video speed and tracking quality"): on the generated
# videos no ID switch (as with every frame; every 10th frame had one), box IoU 0.01-0.07 lower, and
# 2-4x the frames/s of full-size detection on every frame.
DEFAULT_DETECT_EVERY = 3
DEFAULT_DETECT_SIZE = 320
STAGES = ("decode", "detect", "track", "classify", "output")
MIN_FACE_PX = 40  # smallest face height the detector is given on a downscaled copy


@dataclass
class VideoOptions:
    """How a video is processed (the CLI's options).

    Attributes:
        every: process every K-th frame (the others are only grabbed).
        detect_every: run the face detector on every K-th processed frame, track in between.
        detect_size: longer side, in pixels, of the downscaled frame copy the detector sees while
            the tracked faces are large enough (0: always the full frame).
        track_gap_s: a track not detected for longer than this ends; the person gets a new id.
        smooth_s: time constant of the per-track exponential smoothing (0: raw probabilities).
        duration_s: stop after this many seconds of video (webcam: of recording); None: the end.
        frames_per_batch: processed frames whose faces share one network batch.
        batch_size: faces per network batch at most.
    """

    every: int = 1
    detect_every: int = DEFAULT_DETECT_EVERY
    detect_size: int = DEFAULT_DETECT_SIZE
    track_gap_s: float = 1.0
    smooth_s: float = 0.0
    duration_s: float | None = None
    frames_per_batch: int = 4
    batch_size: int = 64

    def check(self) -> None:
        for name in ("every", "detect_every", "frames_per_batch", "batch_size"):
            if getattr(self, name) < 1:
                raise FerkitError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.detect_size < 0 or 0 < self.detect_size < 64:
            raise FerkitError(f"--detect-size must be 0 (full frame) or >= 64 pixels, not {self.detect_size}")
        if self.track_gap_s <= 0 or self.smooth_s < 0:
            raise FerkitError("--track-gap must be > 0 and --smooth >= 0 seconds")
        if self.duration_s is not None and self.duration_s <= 0:
            raise FerkitError(f"--duration must be > 0 seconds, not {self.duration_s}")


@dataclass
class TrackedFace:
    """One face of a processed frame: ``face`` is what is reported (smoothed probabilities and label
    when smoothing is on), ``raw`` the classifier's output for this frame alone."""

    track: int
    detected: bool  # found by the detector on this frame (else moved by the tracker)
    face: FacePrediction
    raw: FacePrediction


@dataclass
class FrameResult:
    """The faces of one processed frame; ``image`` is the RGB frame (kept only while it is handled);
    ``ended`` the tracks that ended before this frame."""

    frame: int
    time_s: float
    faces: list[TrackedFace]
    image: np.ndarray
    ended: list[int] = field(default_factory=list)


@dataclass
class VideoSummary:
    """What a run did: counts, wall time and where it went (``stage_seconds``, keys `STAGES`)."""

    frames_read: int = 0
    frames_processed: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0
    source_fps: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


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


# --- tracking and smoothing ------------------------------------------------------------------------


class FaceTracker:
    """Track ids for face boxes: norfair's Kalman filter on the two box corners, IoU association.

    Call `update` once per processed frame, with the detections on detection frames and None in
    between. A track is reported on a detection frame when a detection matched it (with the detected
    box) and on the frames that follow until the next detection (with the box the motion model
    predicts); it survives ``max_gap`` frames without a detection, then ends.
    """

    def __init__(self, max_gap: int, detect_every: int = 1, min_iou: float = 0.1):
        from norfair import Tracker
        from norfair.distances import VectorizedDistance

        self.detect_every = detect_every
        self._tracker = Tracker(
            distance_function="iou",
            distance_threshold=1 - min_iou,
            hit_counter_max=max(max_gap, 2 * detect_every),
            initialization_delay=0,  # every detected face gets an id at once
            past_detections_length=0,
        )
        # norfair's IoU expects ordered corners; a lost track's predicted corners can cross
        self._tracker.distance_function = VectorizedDistance(_iou_distance)
        self._frame = 0
        self._last_detection_frame = -1
        self._alive: set[int] = set()

    def update(
        self, detections: Sequence[Detection] | None, size: tuple[int, int]
    ) -> tuple[list[tuple[int, Detection, bool]], list[int]]:
        """The tracked faces of this frame as (track id, detection, detected) largest first, and the
        ids of the tracks that ended since the last call. ``size`` is the frame's (width, height)."""
        from norfair import Detection as Point

        self._frame += 1
        if detections is None:
            objects = self._tracker.update(None)
        else:
            self._last_detection_frame = self._frame
            points = [
                Point(np.array([[x, y], [x + w, y + h]], float), data=(self._frame, d))
                for d in detections
                for x, y, w, h in [d.box]
            ]
            objects = self._tracker.update(points, period=self.detect_every)
        found = []
        for obj in objects:
            frame, det = obj.last_detection.data
            if frame == self._frame:
                found.append((obj.id, det, True))
            elif frame == self._last_detection_frame:
                (x0, y0), (x1, y1) = obj.estimate
                box = clip_box(x0, y0, x1 - x0, y1 - y0, *size)
                if min(box[2:]) >= 8:
                    found.append((obj.id, Detection(box, det.score), False))
        alive = {o.id for o in self._tracker.tracked_objects if o.id is not None and o.hit_counter >= 0}
        ended = sorted(self._alive - alive)
        self._alive = alive
        return sorted(found, key=lambda f: -f[1].box[2] * f[1].box[3]), ended


def _iou_distance(candidates: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """norfair's ``1 - IoU`` between (N, 4) and (K, 4) corner boxes, after putting corners in order."""
    from norfair.distances import iou

    def ordered(b: np.ndarray) -> np.ndarray:
        low = np.minimum(b[:, :2], b[:, 2:])
        return np.concatenate([low, np.maximum(np.maximum(b[:, :2], b[:, 2:]), low + 1e-3)], axis=1)

    return iou(ordered(candidates), ordered(objects))


class DetectionSize:
    """The size the detector sees on each detection frame: the copy downscaled to ``detect_size``
    while every tracked face stays at least `MIN_FACE_PX` tall in it, else the full frame; and the
    full frame once every ``probe_every`` detections (about once a second), where faces too small
    for the copy can appear. YuNet misses faces under ~36 px (measured), and detecting on 320 px
    instead of 640 costs about a quarter of the time."""

    def __init__(self, detect_size: int, probe_every: int):
        self.detect_size = detect_size
        self.probe_every = probe_every
        self.smallest = math.inf  # smallest tracked face height, in full-frame pixels
        self.count = 0

    def next(self, shape: tuple[int, ...]) -> int | None:
        """``max_side`` for this detection (None: the full frame, within the detector's own limit)."""
        scale = self.detect_size / max(shape[:2]) if self.detect_size else 1.0
        probe = self.count % self.probe_every == 0
        self.count += 1
        return self.detect_size if scale < 1 and not probe and self.smallest * scale >= MIN_FACE_PX else None

    def seen(self, heights: Sequence[int]) -> None:
        self.smallest = min(heights, default=math.inf)


class Smoother:
    """Per-track exponential moving average of probabilities with time constant ``tau`` seconds:
    a new frame weighs ``1 - exp(-dt / tau)``, so the result does not depend on the frame rate."""

    def __init__(self, tau: float):
        self.tau = tau
        self._state: dict[int, tuple[float, np.ndarray]] = {}

    def __call__(self, track: int, time_s: float, probs: np.ndarray) -> np.ndarray:
        last = self._state.get(track)
        if last is None:
            smoothed = probs
        else:
            weight = 1 - math.exp(-max(time_s - last[0], 0.0) / self.tau)
            smoothed = last[1] + weight * (probs - last[1])
        self._state[track] = (time_s, smoothed)
        return smoothed

    def forget(self, tracks: Sequence[int]) -> None:
        for t in tracks:
            self._state.pop(t, None)


# --- per-track summary -----------------------------------------------------------------------------


@dataclass
class Stretch:
    """Consecutive processed frames of one track with the same label."""

    frames: int = 0
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass
class TrackStats:
    """Running statistics of one track (constant memory, whatever its length)."""

    track: int
    n_classes: int
    first_s: float = math.inf
    last_s: float = 0.0
    frames: int = 0
    prob_sum: np.ndarray = field(init=False)
    label_counts: np.ndarray = field(init=False)
    longest: list[Stretch] = field(init=False)
    run_label: int = -1
    run: Stretch = field(default_factory=Stretch)

    def __post_init__(self) -> None:
        self.prob_sum = np.zeros(self.n_classes)
        self.label_counts = np.zeros(self.n_classes, int)
        self.longest = [Stretch() for _ in range(self.n_classes)]

    def add(self, time_s: float, raw: np.ndarray, label: int) -> None:
        self.first_s = min(self.first_s, time_s)
        self.last_s = time_s
        self.frames += 1
        self.prob_sum += raw
        self.label_counts[label] += 1
        if label == self.run_label:
            self.run.frames += 1
            self.run.end_s = time_s
        else:
            self.run_label, self.run = label, Stretch(1, time_s, time_s)
        if self.run.frames > self.longest[label].frames:
            self.longest[label] = Stretch(self.run.frames, self.run.start_s, self.run.end_s)

    def to_dict(self, class_names: Sequence[str], step_s: float) -> dict:
        """Summary of the track. A stretch of n frames lasts ``end - start + step_s`` seconds."""
        dominant = int(np.argmax(self.label_counts))
        mean = self.prob_sum / self.frames
        return {
            "track": self.track,
            "first_s": round(self.first_s, 3),
            "last_s": round(self.last_s, 3),
            "frames": self.frames,
            "mean_probabilities": {c: round(float(p), 6) for c, p in zip(class_names, mean, strict=True)},
            "dominant": class_names[dominant],
            "dominant_share": round(float(self.label_counts[dominant] / self.frames), 4),
            "longest": {
                c: {"frames": s.frames, "start_s": round(s.start_s, 3) if s.frames else None,
                    "end_s": round(s.end_s, 3) if s.frames else None,
                    "seconds": round(s.end_s - s.start_s + step_s, 3) if s.frames else 0.0}
                for c, s in zip(class_names, self.longest, strict=True)
            },
        }  # fmt: skip


def summary_csv_header(class_names: Sequence[str]) -> list[str]:
    return ["track", "first_s", "last_s", "frames", "dominant", "dominant_share",
            *(f"mean_{c}" for c in class_names), *(f"longest_{c}_s" for c in class_names)]  # fmt: skip


def write_summary(path: str | os.PathLike, tracks: list[dict], meta: dict, class_names: list[str]) -> None:
    """The per-track summary as JSON (``meta`` + ``tracks``) or CSV (one row per track), atomically."""
    if Path(path).suffix.lower() == ".csv":
        with csv_rows(path, summary_csv_header(class_names)) as rows:
            for t in tracks:
                rows.writerow([t["track"], t["first_s"], t["last_s"], t["frames"], t["dominant"],
                               t["dominant_share"], *t["mean_probabilities"].values(),
                               *(s["seconds"] for s in t["longest"].values())])  # fmt: skip
        return
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({**meta, "tracks": tracks}, indent=1) + "\n", encoding="utf-8")


# --- plots -----------------------------------------------------------------------------------------


def save_plot(
    timelines: Sequence[tuple[str, Timeline]], class_names: list[str], path: str | os.PathLike, title: str
) -> None:
    """One emotion-over-time panel per (name, timeline), stacked, as a PNG. matplotlib is imported here
    only, and drawn without pyplot (Agg canvas), so no global backend is changed and no display is
    needed."""
    require_train("ferkit video --plot", ("matplotlib",))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(1, len(timelines))
    fig = Figure(figsize=(10, 1.2 + 2.4 * n), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, timeline) in zip(axes, timelines, strict=False):
        times, means = timeline.series()
        for i, cls in enumerate(class_names):
            ax.plot(times, means[:, i], label=cls, linewidth=1.2, marker="." if len(times) < 60 else None)
        ax.set(ylabel="probability", ylim=(0, 1), title=name)
    if not timelines:
        axes[0].set_title("no face was found")
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", ncols=min(len(class_names), 7), fontsize="small")
    fig.suptitle(title)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


class TrackTimelines:
    """Timelines of live tracks and of the ``keep`` longest ended ones: bounded memory."""

    def __init__(self, n_classes: int, width_s: float, keep: int):
        self.n_classes, self.width, self.keep = n_classes, width_s, keep
        self.live: dict[int, tuple[int, Timeline]] = {}
        self.ended: list[tuple[int, int, Timeline]] = []  # min-heap on (frames, -track)

    def add(self, track: int, time_s: float, probs: np.ndarray) -> None:
        frames, tl = self.live.get(track) or (0, Timeline(self.n_classes, 512, self.width))
        tl.add(time_s, probs)
        self.live[track] = (frames + 1, tl)

    def end(self, tracks: Sequence[int]) -> None:
        for t in tracks:
            if t in self.live:
                frames, tl = self.live.pop(t)
                heapq.heappush(self.ended, (frames, -t, tl))
                if len(self.ended) > self.keep:
                    heapq.heappop(self.ended)

    def longest(self) -> list[tuple[str, Timeline]]:
        self.end(list(self.live))
        best = sorted(self.ended, key=lambda e: (-e[0], -e[1]))[: self.keep]
        return [(f"track {-t} ({frames} frames)", tl) for frames, t, tl in sorted(best, key=lambda e: -e[1])]


# --- sources ---------------------------------------------------------------------------------------


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
            "WAYLAND_DISPLAY are unset); add --no-display to record to --csv/--summary without a window"
        )
    if not opencv_gui():
        raise FerkitError(
            "webcam mode needs an OpenCV build with a GUI, but this one has none (opencv-python-headless); "
            "install opencv-python, or add --no-display to record to --csv/--summary without a window"
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


class Stages:
    """Wall time per pipeline stage, and the frames read (forwarded to a progress bar)."""

    def __init__(self, bar=None):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.n = 0
        self.bar = bar

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now

    def update(self, k: int) -> None:
        self.n += k
        if self.bar is not None:
            self.bar.update(k)


def _frames(
    cap: cv2.VideoCapture, every: int, live: bool, stages: Stages
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Every ``every``-th frame as (index, time in s, RGB); skipped frames are only grabbed, not converted.

    Time: index / FPS for files (exact for constant frame rate), else the container's timestamp,
    else the wall clock (webcams).
    """
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


# --- the pipeline ----------------------------------------------------------------------------------


def iter_video(
    recognizer: Recognizer,
    cap: cv2.VideoCapture,
    options: VideoOptions | None = None,
    live: bool = False,
    stages: Stages | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[FrameResult]:
    """Tracked, classified faces of every processed frame, streamed in order.

    Stops at the end of the video, after ``options.duration_s`` or when ``stop()`` turns true; the
    frames already read are still classified and yielded.
    """
    opts = options or VideoOptions()
    opts.check()
    stages = stages or Stages()
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0  # a webcam's nominal rate is good enough for these
    tracker = FaceTracker(max(1, round(opts.track_gap_s * fps / opts.every)), opts.detect_every)
    sizer = DetectionSize(opts.detect_size, max(1, round(fps / opts.every / opts.detect_every)))
    smoother = Smoother(opts.smooth_s) if opts.smooth_s > 0 else None
    detector = recognizer.detector
    pending: list[tuple[int, float, np.ndarray, list[tuple[int, Detection, bool]], list[int]]] = []
    for p, (index, t, rgb) in enumerate(_frames(cap, opts.every, live, stages)):
        if stop() or (opts.duration_s is not None and t >= opts.duration_s):
            break
        t0 = time.perf_counter()
        dets = detector.detect(rgb, sizer.next(rgb.shape)) if p % opts.detect_every == 0 else None
        t0 = stages.add("detect", t0)
        tracked, ended = tracker.update(dets, (rgb.shape[1], rgb.shape[0]))
        sizer.seen([d.box[3] for _, d, _ in tracked])
        stages.add("track", t0)
        pending.append((index, t, rgb, tracked, ended))
        if len(pending) >= (1 if live else opts.frames_per_batch):
            yield from _classify(recognizer, pending, opts.batch_size, smoother, stages)
            pending = []
    yield from _classify(recognizer, pending, opts.batch_size, smoother, stages)


def _classify(
    recognizer: Recognizer, frames: list, batch_size: int, smoother: Smoother | None, stages: Stages
) -> Iterator[FrameResult]:
    if not frames:
        return
    t0 = time.perf_counter()
    found = recognizer.classify_boxes(
        [f[2] for f in frames], [[d for _, d, _ in f[3]] for f in frames], batch_size
    )
    stages.add("classify", t0)
    names = recognizer.class_names
    for (index, t, rgb, tracked, ended), faces in zip(frames, found, strict=True):
        if smoother is not None:
            smoother.forget(ended)
        out = []
        for (track, _, detected), raw in zip(tracked, faces, strict=True):
            face = raw
            if smoother is not None:
                probs = smoother(track, t, np.fromiter(raw.probabilities.values(), float))
                best = int(np.argmax(probs))
                as_dict = dict(zip(names, map(float, probs), strict=True))
                face = FacePrediction(raw.box, names[best], float(probs[best]), as_dict, raw.detection_score)
            out.append(TrackedFace(track, detected, face, raw))
        yield FrameResult(index, t, out, rgb, ended)


def video_header(class_names: Sequence[str], smoothing: bool) -> list[str]:
    """CSV columns: ``frame, time_s, track, detected, face, x, y, w, h``, the raw probabilities and
    ``label``; with smoothing, the raw label becomes ``raw_label`` and ``smooth_<class>`` columns
    precede the (smoothed) ``label``."""
    columns = ["frame", "time_s", "track", "detected", *face_columns(class_names)]
    if smoothing:
        columns = [*columns[:-1], "raw_label", *(f"smooth_{c}" for c in class_names), "label"]
    return columns


def _row(fr: FrameResult, i: int, tf: TrackedFace, smoothing: bool) -> list:
    row = [fr.frame, f"{fr.time_s:.3f}", tf.track, int(tf.detected), *face_values(i, tf.raw)]
    if smoothing:
        row += [*(f"{p:.6f}" for p in tf.face.probabilities.values()), tf.face.label]
    return row


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


@dataclass
class VideoOutputs:
    """Where the results go; every file is written atomically, and only once the run ends."""

    csv: str | os.PathLike | None = None
    summary: str | os.PathLike | None = None  # .json or .csv
    annotate: str | os.PathLike | None = None  # .mp4
    plot: str | os.PathLike | None = None  # .png
    plot_tracks: int = 6

    def check(self) -> None:
        if self.summary is not None and Path(self.summary).suffix.lower() not in (".json", ".csv"):
            raise FerkitError(f"{self.summary}: --summary must be a .json or .csv file")
        if self.plot is not None:
            require_train("ferkit video --plot", ("matplotlib",))  # before any work
        if self.plot_tracks < 1:
            raise FerkitError(f"--plot-tracks must be >= 1, not {self.plot_tracks}")


def process_video(
    recognizer: Recognizer,
    source: str | os.PathLike | int,
    options: VideoOptions | None = None,
    outputs: VideoOutputs | None = None,
    show: bool = False,
    progress: bool = True,
) -> VideoSummary:
    """Run a video file (or webcam index) through detection, tracking and recognition; write outputs.

    The annotated video holds the processed frames only, at FPS / ``every``, so it keeps the
    source's duration. Ctrl-C (or q/Esc in the window, or ``duration_s``) stops early and still
    writes every output; a failure leaves none half-written.

    Args:
        recognizer: model and detector (`Recognizer.load`).
        source: a video file, or a webcam index.
        options: processing options (`VideoOptions`).
        outputs: files to write (`VideoOutputs`).
        show: display the annotated frames in a window (needs a display and OpenCV's GUI).
        progress: show a progress bar.

    Returns:
        Counts, timings per stage and the number of tracks.
    """
    opts, outs = options or VideoOptions(), outputs or VideoOutputs()
    opts.check()
    outs.check()
    live = isinstance(source, int)
    if show:
        require_display()
    recognizer.detector  # noqa: B018 - build the detector now: a missing model fails before any work
    cap = open_capture(source)
    summary = VideoSummary(source_fps=0.0 if live else float(cap.get(cv2.CAP_PROP_FPS) or 0.0))
    step = opts.every / summary.source_fps if summary.source_fps > 0 else 0.0
    names = recognizer.class_names
    stats: dict[int, TrackStats] = {}
    timelines = TrackTimelines(len(names), step or 0.1, outs.plot_tracks) if outs.plot else None
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not live else 0
    start = time.perf_counter()
    try:
        with ExitStack() as stack:
            bar = stack.enter_context(tqdm(total=total or None, unit="frame", disable=not progress))
            stages = Stages(bar)
            smoothing = opts.smooth_s > 0
            rows = (
                stack.enter_context(csv_rows(outs.csv, video_header(names, smoothing))) if outs.csv else None
            )
            writer = (
                _VideoOut(stack, outs.annotate, summary.source_fps, opts.every) if outs.annotate else None
            )
            stop = stack.enter_context(stop_on_sigint())
            first = last = None
            for fr in iter_video(recognizer, cap, opts, live, stages, stop):
                t0 = time.perf_counter()
                first = fr.time_s if first is None else first
                last = fr.time_s
                summary.frames_processed += 1
                summary.faces += len(fr.faces)
                if timelines is not None:
                    timelines.end(fr.ended)
                for i, tf in enumerate(fr.faces):
                    if rows is not None:
                        rows.writerow(_row(fr, i, tf, smoothing))
                    raw = np.fromiter(tf.raw.probabilities.values(), float)
                    stats.setdefault(tf.track, TrackStats(tf.track, len(names))).add(
                        fr.time_s, raw, names.index(tf.face.label)
                    )
                    if timelines is not None:
                        timelines.add(tf.track, fr.time_s, np.fromiter(tf.face.probabilities.values(), float))
                quit_ = False
                if writer is not None or show:
                    tags = [f"#{tf.track}" for tf in fr.faces]
                    bgr = cv2.cvtColor(
                        annotate(fr.image, [tf.face for tf in fr.faces], panel=False, tags=tags),
                        cv2.COLOR_RGB2BGR,
                    )
                    if writer is not None:
                        writer.write(bgr)
                    quit_ = show and _show(bgr)
                stages.add("output", t0)
                if quit_:
                    break
            summary.frames_read = stages.n
            summary.stage_seconds = stages.seconds
            if summary.frames_processed == 0 and stop():
                raise FerkitError(f"{source}: stopped before any frame was processed; nothing written")
            if summary.frames_processed == 0:
                raise NothingReadError(
                    f"{source}: no frame could be read (empty video, or a codec OpenCV cannot decode)"
                )
            if not step and last is not None and summary.frames_processed > 1:  # webcam: measured rate
                step = (last - first) / (summary.frames_processed - 1)
            summary.tracks = len(stats)
            name = f"webcam {source}" if live else Path(source).name
            if outs.summary:
                meta = {"source": name, "source_fps": summary.source_fps, "every": opts.every,
                        "frame_step_s": round(step, 6), "smooth_s": opts.smooth_s, "class_names": names,
                        "frames_processed": summary.frames_processed}  # fmt: skip
                tracks = [s.to_dict(names, step) for _, s in sorted(stats.items())]
                write_summary(outs.summary, tracks, meta, names)
            if timelines is not None and outs.plot:
                save_plot(timelines.longest(), names, outs.plot, f"{name}: expressions over time per track")
    finally:
        cap.release()
        if show:
            cv2.destroyAllWindows()
    summary.seconds = time.perf_counter() - start
    return summary


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
