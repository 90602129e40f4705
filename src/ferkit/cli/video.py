"""`ferkit video`: expressions over time, per person, in a video file or a live webcam."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferkit.cli.predict import DetectorOpt, DeviceOpt, ModelOpt, TtaOpt, YunetOpt, load_recognizer
from ferkit.errors import FerkitError
from ferkit.inference.video import DEFAULT_DETECT_EVERY, DEFAULT_DETECT_SIZE, STAGES


def video(
    source: Annotated[Path | None, typer.Argument(help="Video file (anything OpenCV/FFmpeg reads).")] = None,
    webcam: Annotated[int | None, typer.Option("--webcam", help="Webcam index instead of a file.")] = None,
    model: ModelOpt = None,
    detector: DetectorOpt = "yunet",
    yunet_model: YunetOpt = None,
    every: Annotated[int, typer.Option("--every", help="Process every K-th frame.")] = 1,
    detect_every: Annotated[
        int,
        typer.Option("--detect-every", help="Detect faces on every K-th processed frame; track in between."),
    ] = DEFAULT_DETECT_EVERY,
    detect_size: Annotated[
        int,
        typer.Option("--detect-size", help="Longer side (px) of the frame copy the detector sees; 0: full."),
    ] = DEFAULT_DETECT_SIZE,
    track_gap: Annotated[
        float, typer.Option("--track-gap", help="Seconds a track survives undetected; later: a new id.")
    ] = 1.0,
    smooth: Annotated[
        float,
        typer.Option("--smooth", help="Per-track smoothing time constant in seconds (0: raw, the default)."),
    ] = 0.0,
    csv_out: Annotated[
        Path | None,
        typer.Option("--csv", help="Per-face rows: frame, time, track, box, probabilities, label."),
    ] = None,
    summary_out: Annotated[
        Path | None, typer.Option("--summary", help="Per-track summary: a .json or .csv file.")
    ] = None,
    annotate_out: Annotated[Path | None, typer.Option("--annotate", help="Annotated .mp4 video.")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Emotion-over-time PNG, one panel per track.")
    ] = None,
    plot_tracks: Annotated[
        int, typer.Option("--plot-tracks", help="Plot at most N tracks (the longest).")
    ] = 6,
    no_display: Annotated[
        bool, typer.Option("--no-display", help="Webcam: no window; record until Ctrl-C or --duration.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds (of video / recording).")
    ] = None,
    device: DeviceOpt = "cpu",
    tta: TtaOpt = None,
) -> None:
    """Stream a video (or webcam) through detection, tracking and recognition; memory stays flat."""
    from ferkit.inference.video import VideoOptions, VideoOutputs, process_video, require_display

    if source is None and webcam is None:
        raise FerkitError("a video is needed: give either a video file or --webcam N (a camera)")
    if source is not None and webcam is not None:
        raise FerkitError("give either a video file or --webcam N (not both)")
    show = webcam is not None and not no_display
    if show:
        require_display()  # before loading anything: headless machines get the message at once
    options = VideoOptions(every, detect_every, detect_size, track_gap, smooth, duration)
    outputs = VideoOutputs(csv_out, summary_out, annotate_out, plot, plot_tracks)
    options.check()
    outputs.check()
    rec = load_recognizer(model, detector, yunet_model, device, tta)
    summary = process_video(rec, webcam if webcam is not None else source, options, outputs, show=show)
    rate = summary.frames_processed / summary.seconds if summary.seconds else 0.0
    typer.echo(
        f"read {summary.frames_read} frames, processed {summary.frames_processed} (every {every}), "
        f"{summary.faces} faces in {summary.tracks} tracks, {summary.seconds:.1f} s "
        f"({rate:.1f} processed frames/s)"
    )
    total = sum(summary.stage_seconds.values()) or 1.0
    typer.echo("time: " + ", ".join(f"{s} {100 * summary.stage_seconds[s] / total:.0f} %" for s in STAGES))
    for label, path in (("csv", csv_out), ("summary", summary_out), ("annotated video", annotate_out),
                        ("plot", plot)):  # fmt: skip
        if path:
            typer.echo(f"{label}: {path}")
