"""What a video run is asked to do (`VideoOptions`, `VideoOutputs`) and what it did (`VideoSummary`,
`Stages`): the settings every other part of the pipeline reads."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ferkit.errors import FerkitError
from ferkit.extras import require_train

# Chosen with benchmarks/video_speed.py (README "Video speed and tracking quality"): on the generated
# videos no ID switch (as with every frame; every 10th frame had one), box IoU 0.01-0.07 lower, and
# 2-4x the frames/s of full-size detection on every frame.
DEFAULT_DETECT_EVERY = 3
DEFAULT_DETECT_SIZE = 320
STAGES = ("decode", "detect", "track", "classify", "output")


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
