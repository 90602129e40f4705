"""`ferkit adapt`: ferkit's expression model adapted to the user's labelled photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferkit.cli.predict import DetectorOpt, YunetOpt
from ferkit.errors import FerkitError
from ferkit.extras import require_train


def adapt(
    data: Annotated[str, typer.Argument(help="Labelled dataset: folder per class, archive or CSV.")],
    out: Annotated[Path, typer.Option("--out", help="New directory for the adapted model.")],
    model: Annotated[
        str, typer.Option("--model", help="Base model: default | fast | run directory | .pt | ferkit .onnx.")
    ] = "default",
    mode: Annotated[
        str,
        typer.Option("--mode", help="head: linear probe on the frozen model (seconds); finetune: train too."),
    ] = "head",
    folds: Annotated[
        int | None, typer.Option("--folds", help="K-fold validation (then the final model uses all data).")
    ] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by", help="Keep people apart: regex over paths (first group) or a path,group CSV."
        ),
    ] = None,
    classes: Annotated[
        str | None, typer.Option("--classes", help="Use only these dataset classes: a,b,c.")
    ] = None,
    class_map: Annotated[
        str | None,
        typer.Option("--class-map", help="Rename/merge classes: old=new,... or a file of old=new lines."),
    ] = None,
    detector: DetectorOpt = "yunet",
    yunet_model: YunetOpt = None,
    epochs: Annotated[int, typer.Option("--epochs", help="finetune: epochs per fit.")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Folds, PCA and training seed.")] = 0,
) -> None:
    """Adapt an expression model to your photos: any class set, grouped K-fold validation."""
    require_train("ferkit adapt")
    from ferkit.adapt.run import AdaptOptions
    from ferkit.adapt.run import adapt as run_adapt

    if mode not in ("head", "finetune"):
        raise FerkitError(f"--mode must be head or finetune, not {mode!r}")
    if detector not in ("yunet", "haar", "none"):
        raise FerkitError(f"--detector must be yunet, haar or none, not {detector!r}")
    if epochs < 1:
        raise FerkitError(f"--epochs must be at least 1, not {epochs}")
    opts = AdaptOptions(
        model=model, mode=mode, folds=folds, group_by=group_by,  # type: ignore[arg-type]
        classes=[c for c in (classes or "").split(",") if c.strip()] or None, class_map=class_map,
        detector=detector, yunet_model=None if yunet_model is None else str(yunet_model),
        seed=seed, epochs=epochs,
    )  # fmt: skip
    validation = run_adapt(data, out, opts)
    for line in validation.lines():
        typer.echo(line)
    typer.echo(f"adapted model: {out} (use it as --model / MODEL in predict, video, serve, evaluate, export)")
