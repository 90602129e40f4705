"""`ferkit evaluate`, `ferkit explain` and `ferkit compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferkit.errors import FerkitError
from ferkit.extras import require_train

TtaOpt = Annotated[str, typer.Option("--tta", help="none | flip | tencrop")]


def _check_tta(tta: str) -> str:
    if tta not in ("none", "flip", "tencrop"):
        raise FerkitError(f"--tta must be none, flip or tencrop, not {tta!r}")
    return tta


def evaluate(
    run_dir: Annotated[list[Path] | None, typer.Argument(help="Run directory.")] = None,
    data: Annotated[str, typer.Option("--data", help="Dataset: folder, CSV or archive.")] = ...,
    split: Annotated[str | None, typer.Option("--split", help="Split to evaluate (default: test).")] = None,
    tta: TtaOpt = "none",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default RUN_DIR/eval-SPLIT).")
    ] = None,
    ensemble: Annotated[
        list[Path] | None, typer.Option("--ensemble", help="Average several runs (repeat, or list after it).")
    ] = None,
    gradcam: Annotated[int, typer.Option(help="Grad-CAM examples per class and outcome (0 = none).")] = 3,
) -> None:
    """Metrics, predictions, plots, Grad-CAM and report.html for a run or an ensemble."""
    require_train("ferkit evaluate")
    from ferkit.evaluation.evaluate import evaluate as run_eval

    runs = list(run_dir or []) + list(ensemble or [])
    if not runs:
        raise FerkitError("give a RUN_DIR (or --ensemble RUN_DIR RUN_DIR ...)")
    target = out or runs[0] / f"eval-{split or 'test'}-{tta}"
    m = run_eval(runs, data, target, split, _check_tta(tta), gradcam)  # type: ignore[arg-type]
    typer.echo(
        f"{m['split']} (n={m['n']}, tta={tta}): accuracy {m['accuracy']:.4f}  "
        f"macro-F1 {m['macro']['f1']:.4f}  "
        f"weighted-F1 {m['weighted']['f1']:.4f}  ECE {m['ece']:.4f}\nreport: {target / 'report.html'}"
    )


def explain(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or checkpoint .pt).")],
    images: Annotated[list[Path], typer.Argument(help="Face image files.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("explain"),
) -> None:
    """Grad-CAM overlay and class probabilities for single face images."""
    require_train("ferkit explain")
    from ferkit.evaluation.explain import explain as run_explain

    for r in run_explain(run_dir, images, out):
        typer.echo(f"{r['image']}: {r['label']} ({r['score']:.2f}) -> {r['figure']}")


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
    data: Annotated[str, typer.Option("--data", help="Dataset: folder, CSV or archive.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    split: Annotated[str | None, typer.Option("--split", help="Split to evaluate (default: test).")] = None,
    tta: TtaOpt = "none",
) -> None:
    """Accuracy, macro-F1, parameters, GFLOPs and CPU latency of several runs, with charts."""
    require_train("ferkit compare")
    from ferkit.evaluation.compare import COLUMNS
    from ferkit.evaluation.compare import compare as run_compare

    rows = run_compare(run_dirs, data, out, split, _check_tta(tta))  # type: ignore[arg-type]
    typer.echo("  ".join(COLUMNS))
    for r in rows:
        typer.echo("  ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS))
    typer.echo(f"report: {out / 'compare.html'}")
