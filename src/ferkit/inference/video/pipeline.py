"""The video pipeline: decode, detect every few frames, track, classify in batches, write outputs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ferkit.errors import FerkitError, NothingReadError
from ferkit.extras import opencv
from ferkit.inference.annotate import annotate
from ferkit.inference.detect import Detection, to_bgr
from ferkit.inference.recognizer import FacePrediction, Recognizer, csv_rows, face_columns, face_values
from ferkit.inference.video.capture import (
    VIDEO,
    VideoOut,
    open_capture,
    read_frames,
    require_display,
    show_frame,
    stop_on_sigint,
)
from ferkit.inference.video.options import Stages, VideoOptions, VideoOutputs, VideoSummary
from ferkit.inference.video.smoothing import Smoother
from ferkit.inference.video.summary import TrackStats, save_plot, write_summary
from ferkit.inference.video.timeline import TrackTimelines
from ferkit.inference.video.tracking import DetectionSize, FaceTracker

if TYPE_CHECKING:
    import cv2


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
    cv2 = opencv(VIDEO)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0  # a webcam's nominal rate is good enough for these
    tracker = FaceTracker(max(1, round(opts.track_gap_s * fps / opts.every)), opts.detect_every)
    sizer = DetectionSize(opts.detect_size, max(1, round(fps / opts.every / opts.detect_every)))
    smoother = Smoother(opts.smooth_s) if opts.smooth_s > 0 else None
    detector = recognizer.detector
    pending: list[tuple[int, float, np.ndarray, list[tuple[int, Detection, bool]], list[int]]] = []
    for p, (index, t, rgb) in enumerate(read_frames(cap, opts.every, live, stages)):
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
    cv2 = opencv(VIDEO)  # before any work: the light install has no OpenCV
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
            writer = VideoOut(stack, outs.annotate, summary.source_fps, opts.every) if outs.annotate else None
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
                    bgr = np.ascontiguousarray(
                        to_bgr(annotate(fr.image, [tf.face for tf in fr.faces], panel=False, tags=tags))
                    )
                    if writer is not None:
                        writer.write(bgr)
                    quit_ = show and show_frame(bgr)
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
