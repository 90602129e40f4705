"""`ferkit video`: expressions over time in a video file or a live webcam."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferkit.cli.predict import DetectorOpt, DeviceOpt, ModelOpt, TtaOpt, YunetOpt, load_recognizer
from ferkit.errors import FerkitError
from ferkit.extras import require_train


def video(
    source: Annotated[Path | None, typer.Argument(help="Video file (anything OpenCV/FFmpeg reads).")] = None,
    webcam: Annotated[int | None, typer.Option("--webcam", help="Webcam index instead of a file.")] = None,
    model: ModelOpt = None,
    detector: DetectorOpt = "yunet",
    yunet_model: YunetOpt = None,
    every: Annotated[int, typer.Option("--every", help="Process every K-th frame.")] = 1,
    csv_out: Annotated[
        Path | None,
        typer.Option("--csv", help="Per-face rows: frame, time_s, face, box, probabilities, label."),
    ] = None,
    annotate_out: Annotated[Path | None, typer.Option("--annotate", help="Annotated .mp4 video.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Emotion-over-time PNG.")] = None,
    device: DeviceOpt = "cpu",
    tta: TtaOpt = None,
) -> None:
    """Stream a video (or webcam window) through detection and recognition; memory stays flat."""
    from ferkit.inference.video import process_video, require_display

    if (source is None) == (webcam is None):
        raise FerkitError("give either a video file or --webcam N (not both)")
    if plot is not None:
        require_train("ferkit video --plot", ("matplotlib",))
    if webcam is not None:
        require_display()  # before loading anything: headless machines get the message at once
    rec = load_recognizer(model, detector, yunet_model, device, tta)
    summary = process_video(
        rec,
        webcam if webcam is not None else source,
        every,
        csv_out,
        annotate_out,
        plot,
        show=webcam is not None,
    )
    rate = summary.frames_processed / summary.seconds if summary.seconds else 0.0
    typer.echo(
        f"read {summary.frames_read} frames, processed {summary.frames_processed} (every {every}), "
        f"{summary.faces} faces, {summary.seconds:.1f} s ({rate:.1f} processed frames/s)"
    )
    for label, path in (("csv", csv_out), ("annotated video", annotate_out), ("plot", plot)):
        if path:
            typer.echo(f"{label}: {path}")
