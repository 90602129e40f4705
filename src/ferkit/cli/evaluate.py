"""`ferkit evaluate`, `ferkit explain` and `ferkit compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferkit.cli.predict import DetectorOpt, YunetOpt
from ferkit.errors import FerkitError
from ferkit.extras import require_train

TtaOpt = Annotated[str, typer.Option("--tta", help="none | flip | shift+flip | tencrop ...")]


def _check_tta(tta: str) -> str:
    from ferkit.models.preprocess import TTA_MODES

    if tta not in TTA_MODES:
        raise FerkitError(f"--tta must be one of {', '.join(TTA_MODES)}; not {tta!r}")
    return tta


def _check_detector(detector: str) -> str:
    if detector not in ("yunet", "haar", "none"):
        raise FerkitError(f"--detector must be yunet, haar or none, not {detector!r}")
    return detector


def evaluate(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="default | fast | run directory | .pt | .onnx; several = their ensemble."),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", help="Dataset: folder, CSV or archive (repeat: cross-dataset)."),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="all | train | val | test (default: test on the model's own "
            "training data, all on any other).",
        ),
    ] = None,
    tta: Annotated[
        str | None,
        typer.Option("--tta", help="none | flip | shift+flip ... (default: the model's own)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default RUN_DIR/eval-SPLIT-TTA or eval-MODEL)."),
    ] = None,
    ensemble: Annotated[
        list[Path] | None, typer.Option("--ensemble", help="Average several runs (repeat, or list after it).")
    ] = None,
    gradcam: Annotated[int, typer.Option(help="Grad-CAM examples per class and outcome (0 = none).")] = 3,
    detector: Annotated[
        str,
        typer.Option("--detector", help="none (face crops) | yunet | haar: find the face in whole photos."),
    ] = "none",
    yunet_model: YunetOpt = None,
    class_map: Annotated[
        str | None, typer.Option("--class-map", help="Dataset class → model class: old=new,old2=new2.")
    ] = None,
    robustness: Annotated[
        bool,
        typer.Option("--robustness", help="Also score controlled shifts (framing, blur...): robustness.csv."),
    ] = False,
) -> None:
    """Score any model on any labelled dataset: metrics, predictions, plots, Grad-CAM and report.html."""
    require_train("ferkit evaluate")
    from ferkit.data.classes import parse_class_map
    from ferkit.evaluation.evaluate import CROSS_COLUMNS, cross_row
    from ferkit.evaluation.evaluate import evaluate as run_eval

    specs = list(models or []) + [str(p) for p in ensemble or []]
    if not specs:
        raise FerkitError("give a MODEL: default, fast, a run directory, .pt or .onnx (several: an ensemble)")
    if not data:
        from ferkit.adapt.run import read_validation

        lines = read_validation(specs[0]) if len(specs) == 1 and Path(specs[0]).is_dir() else None
        if lines:  # an adapted model: how it was validated
            typer.echo("\n".join([f"{specs[0]}: adapted with `ferkit adapt`", *lines]))
            return
        raise FerkitError("give --data DATASET (folder, CSV or archive; repeat it for a cross-dataset table)")
    if tta is not None:
        _check_tta(tta)
    first = Path(specs[0])
    if out is None:
        out = (first / f"eval-{split or 'auto'}-{tta or 'auto'}" if first.is_dir()
               else Path(f"eval-{first.stem}"))  # fmt: skip
    m = run_eval(specs, data, out, split, tta, gradcam, _check_detector(detector),  # type: ignore[arg-type]
                 parse_class_map(class_map), yunet_model, robustness)  # fmt: skip
    for row in m.get("datasets", [m]):
        for note in row["notes"]:
            typer.echo(f"note ({row['data']}): {note}")
    if "datasets" in m:
        typer.echo("  ".join(CROSS_COLUMNS))
        for row in m["datasets"]:
            typer.echo("  ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in cross_row(row)))
        typer.echo(f"report: {out / 'report.html'}")
        return
    typer.echo(
        f"{m['split']} (n={m['n']}, tta={m['tta']}, detector={m['detector']}): accuracy {m['accuracy']:.4f}  "
        f"macro-F1 {m['macro']['f1']:.4f}  "
        f"weighted-F1 {m['weighted']['f1']:.4f}  ECE {m['ece']:.4f}\nreport: {out / 'report.html'}"
    )
    if "robustness" in m:
        r = m["robustness"]
        typer.echo(f"robustness: mean {r['mean']:.4f} (clean {r['clean']:.4f}): {out / 'robustness.csv'}")


def explain(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or checkpoint .pt).")],
    images: Annotated[list[Path], typer.Argument(help="Photos or face images.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("explain"),
    detector: DetectorOpt = "yunet",
    yunet_model: YunetOpt = None,
) -> None:
    """Grad-CAM overlay and class probabilities for the face in each image, cropped as predict does."""
    require_train("ferkit explain")
    from ferkit.evaluation.explain import explain as run_explain

    for r in run_explain(run_dir, images, out, _check_detector(detector), yunet_model):
        if r.error:
            typer.echo(f"{r.image}: {r.error}")
        else:
            typer.echo(f"{r.image}: {r.label} ({r.score:.2f}) -> {r.figure}")


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
