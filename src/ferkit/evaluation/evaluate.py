"""`ferkit evaluate`: metrics, predictions, every plot and one HTML report for a run (or an ensemble)."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from torch import nn

from ferkit.data import FaceDataset, load_dataset, split_pool
from ferkit.errors import FerkitError
from ferkit.evaluation import plots
from ferkit.evaluation.gradcam import gradcam_overlays, pick_examples
from ferkit.evaluation.metrics import compute_metrics, reliability_bins, text_report
from ferkit.evaluation.report import image_html, markdown_summary, metrics_tables, pre_html, write_html
from ferkit.fileio import atomic_write_text
from ferkit.models.factory import load_checkpoint
from ferkit.models.predict import TTA, predict_proba
from ferkit.models.preprocess import Preprocessing
from ferkit.training.config import TrainConfig, load_config


@dataclass
class Run:
    """A trained model with everything its run directory says about it."""

    path: Path
    model: nn.Module
    class_names: list[str]
    pp: Preprocessing
    config: TrainConfig
    history: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def load_run(path: str | os.PathLike) -> Run:
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise FerkitError(f"{path}: not a run directory (no config.yaml)")
    model, names, pp = load_checkpoint(path)
    history = plots.read_history(path / "metrics.csv") if (path / "metrics.csv").is_file() else []
    return Run(path, model, names, pp, load_config(path / "config.yaml"), history)


def load_split(run: Run, data: str, split: str | None) -> tuple[FaceDataset, str]:
    """The evaluation split, decoded and (re)split exactly as the run's training data was."""
    spec = run.config.data
    ds = load_dataset(data, image_size=spec.image_size, color=spec.color, progress=True)
    if spec.split and (spec.split.source is None or spec.split.source in ds.split_names()):
        ds = split_pool(ds, spec.split.ratios, spec.split.names, spec.split.seed, spec.split.source)
    names = ds.split_names()
    split = split or ("test" if "test" in names else spec.val_split)
    if tuple(ds.class_names) != tuple(run.class_names):
        raise FerkitError(f"{data}: classes {list(ds.class_names)} differ from the model's {run.class_names}")
    return ds.split(split), split


def ensemble_proba(runs: list[Run], ds: FaceDataset, tta: TTA, batch_size: int = 256) -> np.ndarray:
    """Mean of the models' probabilities, each with its own saved preprocessing."""
    total = None
    for run in runs:
        probs = predict_proba(run.model, ds.take, run.pp, n=len(ds), batch_size=batch_size, tta=tta)
        total = probs if total is None else total + probs
    return total / len(runs)


def write_predictions(path: Path, ds: FaceDataset, probs: np.ndarray, names: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["item", "true", "predicted", "confidence", *names])
    pred = probs.argmax(1)
    for i in range(len(ds)):
        row = [ds.sources[i], names[ds.labels[i]], names[pred[i]], f"{probs[i, pred[i]]:.6f}"]
        w.writerow(row + [f"{p:.6f}" for p in probs[i]])
    atomic_write_text(path, buf.getvalue())


def evaluate(
    run_dirs: list[str | os.PathLike], data: str, out: str | os.PathLike, split: str | None = None,
    tta: TTA = "none", gradcam_per_class: int = 3,
) -> dict:  # fmt: skip
    """Evaluate one run (or average several) on a split; write every artefact into ``out``."""
    runs = [load_run(p) for p in run_dirs]
    names = runs[0].class_names
    for r in runs[1:]:
        if r.class_names != names:
            raise FerkitError(f"{r.path}: classes {r.class_names} differ from {runs[0].path}'s {names}")
    ds, split = load_split(runs[0], data, split)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    probs = ensemble_proba(runs, ds, tta)
    metrics = compute_metrics(probs, ds.labels, names) | {
        "split": split, "tta": tta, "runs": [str(r.path) for r in runs], "data": str(data),
    }  # fmt: skip
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "classification_report.txt", text_report(probs, ds.labels, names))
    write_predictions(out / "predictions.csv", ds, probs, names)
    figures = make_figures(runs, ds, probs, metrics, out, gradcam_per_class)
    title = " + ".join(r.name for r in runs)
    atomic_write_text(out / "report.md", markdown_summary(f"ferkit evaluation — {title}", metrics))
    write_report(out / "report.html", runs, metrics, figures, title)
    return metrics


def make_figures(
    runs: list[Run], ds: FaceDataset, probs: np.ndarray, metrics: dict, out: Path, per_class: int
) -> list[tuple[str, Path]]:
    names = metrics["labels"]
    cm = metrics["confusion_matrix"]
    figs = [
        ("Confusion matrix (counts)", plots.confusion_png(cm, names, out / "confusion_counts.png", False)),
        ("Confusion matrix (row-normalised)",
         plots.confusion_png(cm, names, out / "confusion_normalized.png", True)),
        ("Per-class F1", plots.bars_png(names, [metrics["per_class"][c]["f1"] for c in names], "Per-class F1",
                                        "F1", out / "per_class_f1.png")),
        ("Reliability diagram", plots.reliability_png(reliability_bins(probs, ds.labels), metrics["ece"],
                                                      out / "reliability.png")),
    ]  # fmt: skip
    with_history = [(r.name, r.history) for r in runs if r.history]
    if with_history:
        figs.append(("Learning curves", plots.learning_curves_png(with_history, out / "learning_curves.png")))
    figs.append(("Most confident mistakes", mistakes_png(ds, probs, names, out / "mistakes.png")))
    if per_class:
        figs.append(("Grad-CAM: correct (✓) and wrong (✗) predictions per class",
                     gradcam_png(runs[0], ds, probs, per_class, out / "gradcam.png")))  # fmt: skip
    return figs


def mistakes_png(ds: FaceDataset, probs: np.ndarray, names: list[str], path: Path, n: int = 24) -> Path:
    pred, conf = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(pred != ds.labels)
    top = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    titles = [f"true {names[ds.labels[i]]}\npred {names[pred[i]]} {conf[i]:.2f}" for i in top]
    return plots.gallery_png(list(ds.take(top)) if len(top) else [], titles, path, cols=6,
                             suptitle="Most confident mistakes")  # fmt: skip


def gradcam_png(run: Run, ds: FaceDataset, probs: np.ndarray, per_class: int, path: Path) -> Path:
    """Rows = true classes; left: most confident correct, right: most confident wrong predictions."""
    names, pred = run.class_names, probs.argmax(1)
    picks = pick_examples(ds.labels, probs, per_class)
    chosen = [i for _, right, wrong in picks for i in right + wrong]
    images_chosen = ds.take(np.array(chosen, dtype=int))
    overlays = (
        gradcam_overlays(run.model, images_chosen, [int(pred[i]) for i in chosen], run.pp) if chosen else []
    )
    by_index = dict(zip(chosen, overlays, strict=True))
    blank = np.full((run.pp.input_size, run.pp.input_size, 3), 255, np.uint8)
    images, titles = [], []
    for c, right, wrong in picks:
        for group, mark in ((right, "✓"), (wrong, "✗")):
            for k in range(per_class):
                i = group[k] if k < len(group) else None
                images.append(by_index[i] if i is not None else blank)
                titles.append(
                    f"{names[c]} {mark} {names[pred[i]]} {probs[i].max():.2f}" if i is not None else ""
                )
    return plots.gallery_png(images, titles, path, cols=2 * per_class,
                             suptitle="Grad-CAM (last conv stage) for the predicted class")  # fmt: skip


def write_report(
    path: Path, runs: list[Run], metrics: dict, figures: list[tuple[str, Path]], title: str
) -> Path:
    sections = [("Headline metrics", metrics_tables(metrics))]
    sections += [(heading, image_html(png, heading)) for heading, png in figures]
    for r in runs:
        data_json = r.path / "data.json"
        if data_json.is_file():
            sections.append((f"Data summary — {r.name}", pre_html(data_json.read_text())))
        sections.append((f"Run config — {r.name}", pre_html(yaml.safe_dump(r.config.model_dump(mode="json"),
                                                                           sort_keys=False))))  # fmt: skip
    subtitle = (
        f"split {metrics['split']} · n = {metrics['n']} · TTA {metrics['tta']} · data {metrics['data']}"
    )
    return write_html(path, f"ferkit evaluation — {title}", subtitle, sections)
