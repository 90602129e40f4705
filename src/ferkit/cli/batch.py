"""`ferkit batch`: one resumable job over a photo and video collection → a Parquet dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferkit.cli.predict import DetectorOpt, ModelOpt, ThreadsOpt, TtaOpt, YunetOpt
from ferkit.errors import NothingReadError


def batch(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Folders (recursive), globs, photo/video files, URIs, manifests (.csv/.parquet "
            "with a 'path' column; their other columns are carried into the results)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Job folder: Parquet parts and job.json.")],
    engine: Annotated[
        str, typer.Option("--engine", help="local (this machine) | ray (pip install 'ferkit[ray]').")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option("--address", help="ray: cluster to join (auto, HOST:PORT); default: a local Ray."),
    ] = None,
    actors: Annotated[
        int | None, typer.Option("--actors", min=1, help="ray: recognizer actors (default: one per CPU).")
    ] = None,
    gpus_per_actor: Annotated[
        float,
        typer.Option("--gpus-per-actor", min=0, help="ray: GPUs per actor (torch models then run on CUDA)."),
    ] = 0.0,
    model: ModelOpt = None,
    detector: DetectorOpt = "yunet",
    yunet_model: YunetOpt = None,
    tta: TtaOpt = None,
    video_every: Annotated[
        int, typer.Option("--video-every", min=1, help="Process every N-th frame of videos.")
    ] = 1,
    part_size: Annotated[
        int, typer.Option("--part-size", min=1, help="Photos per Parquet part (the unit of resume).")
    ] = 32,
    threads: ThreadsOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start over: drop DIR's earlier parts and job record.")
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Recognise a collection; a re-run with the same --out resumes; per-source errors are rows."""
    from ferkit.batch import BatchOptions, run_batch

    options = BatchOptions(model, detector, str(yunet_model) if yunet_model else None, tta, video_every,
                           part_size)  # fmt: skip
    record = run_batch(
        inputs, out, options, engine, address, actors, threads, overwrite, not no_progress, gpus_per_actor
    )
    c = record.counts
    typer.echo(
        f"{c.sources} sources ({c.skipped} already done): {c.done} done now, {c.faces} face rows, "
        f"{c.no_face} without a face, {c.errors} errors in {record.seconds:.1f} s "
        f"({record.sources_per_s:.1f} sources/s) -> {out}"
    )
    if c.done and c.errors == c.done:
        raise NothingReadError(f"none of the {c.done} source(s) could be read")
