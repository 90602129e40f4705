"""`ferkit train`: run a recipe from a YAML config into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ferkit.errors import FerkitError
from ferkit.extras import require_train

if TYPE_CHECKING:
    from ferkit.training.config import TrainConfig


def with_soft_labels(cfg: TrainConfig) -> TrainConfig:
    """Resolve ``train.distill.teacher`` from a model to its (cached) soft-label file, so the saved
    config names the exact file the run learned from."""
    from ferkit.data import load_dataset
    from ferkit.inference.soft_labels import teacher_soft_labels

    kd = cfg.train.distill
    if not cfg.data.path:
        raise FerkitError("data.path: no dataset given (use --data PATH)")
    # The teacher sees each image at the dataset's own size, whatever size the student stores it at.
    ds = load_dataset(cfg.data.path, color=cfg.data.color, progress=True)
    path = teacher_soft_labels(kd.teacher, ds, kd.tta)
    typer.echo(f"teacher {kd.teacher} (tta {kd.tta}): soft labels {path}")
    kd = kd.model_copy(update={"teacher": str(path)})
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"distill": kd})})


def train(
    out: Annotated[Path, typer.Option("--out", help="Run directory (config, metrics, checkpoints).")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML recipe, e.g. configs/*.yaml.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Dataset: folder, CSV or archive.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config value: key=value (repeatable).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out exactly where it stopped.")
    ] = False,
) -> None:
    """Train a model; Ctrl-C or a kill loses at most the steps since the last checkpoint."""
    require_train("ferkit train")
    from ferkit.training.config import load_config
    from ferkit.training.engine import Trainer

    sets = list(overrides or [])
    if resume:
        saved = out / "config.yaml"
        if not saved.is_file():
            raise FerkitError(f"{out}: nothing to resume (no config.yaml)")
        if config or sets:
            raise FerkitError(
                "--resume continues the saved config.yaml; do not pass --config or --set with it"
            )
        cfg = load_config(saved)
    else:
        cfg = load_config(config, sets + ([f"data.path={data}"] if data else []))
    if cfg.train.distill is not None and not cfg.train.distill.teacher.endswith(".npz"):
        cfg = with_soft_labels(cfg)
    prog = Trainer(cfg, out).fit(resume=resume)
    if prog.best is not None:
        typer.echo(f"best {cfg.train.monitor} {prog.best:.4f} at epoch {prog.best_epoch}; run in {out}")
