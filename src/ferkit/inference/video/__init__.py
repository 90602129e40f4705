"""Expressions over time in a video file or a webcam stream, per person.

Every face gets a **track id** that stays with the person while they are on screen. YuNet runs on
every ``detect_every``-th processed frame, on a copy downscaled to ``detect_size`` pixels when every
tracked face is large enough to be found there (`DetectionSize`; its cost grows with the pixel
count); in between, the tracker's motion model moves the boxes. Every processed frame's faces are
still classified, several frames in one network batch. Optional per-track exponential smoothing of
the probabilities, a per-track summary (JSON/CSV) and one emotion timeline per track.

Tracking (`tracking`) is a NumPy-only port of what ferkit used from norfair (tryolabs/norfair,
BSD-3): a Kalman filter on the box corners, greedy IoU association, and a hit counter that keeps a
track alive through short misses, ends it after a gap, and counts detections that run only every
few frames. Every tracker on PyPI we looked at needs SciPy or more: norfair and filterpy-based SORT
packages SciPy (143 MB of the light install), supervision's ByteTrack matplotlib and PyAV,
roboflow's ``trackers`` opencv-python (which clashes with the headless build), BoxMOT torch.

Memory stays flat: at most ``frames_per_batch`` frames are held, per-track state is a few vectors,
and timelines are kept only for live tracks and the longest ended ones. CSV rows are one per face per
processed frame (see `video_header`); a frame without a face produces no row.

One concern per module: `options` (settings and run counts), `tracking`, `smoothing`, `timeline`,
`summary` (per-track summaries and the plot), `capture` (sources, window, annotated output) and
`pipeline` (`iter_video`, `process_video`). Everything public is importable from here.
"""

from ferkit.inference.video.capture import (
    WINDOW,
    has_display,
    open_capture,
    opencv_gui,
    require_display,
    stop_on_sigint,
)
from ferkit.inference.video.options import (
    DEFAULT_DETECT_EVERY,
    DEFAULT_DETECT_SIZE,
    STAGES,
    Stages,
    VideoOptions,
    VideoOutputs,
    VideoSummary,
)
from ferkit.inference.video.pipeline import FrameResult, TrackedFace, iter_video, process_video, video_header
from ferkit.inference.video.smoothing import Smoother
from ferkit.inference.video.summary import Stretch, TrackStats, save_plot, summary_csv_header, write_summary
from ferkit.inference.video.timeline import Timeline, TrackTimelines
from ferkit.inference.video.tracking import MIN_FACE_PX, DetectionSize, FaceTracker

__all__ = [
    "DEFAULT_DETECT_EVERY",
    "DEFAULT_DETECT_SIZE",
    "MIN_FACE_PX",
    "STAGES",
    "WINDOW",
    "DetectionSize",
    "FaceTracker",
    "FrameResult",
    "Smoother",
    "Stages",
    "Stretch",
    "Timeline",
    "TrackStats",
    "TrackTimelines",
    "TrackedFace",
    "VideoOptions",
    "VideoOutputs",
    "VideoSummary",
    "has_display",
    "iter_video",
    "open_capture",
    "opencv_gui",
    "process_video",
    "require_display",
    "save_plot",
    "stop_on_sigint",
    "summary_csv_header",
    "video_header",
    "write_summary",
]
