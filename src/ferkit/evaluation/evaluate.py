"""`ferkit evaluate`: score any model (run, .pt, .onnx, shipped, ensemble) on any labelled dataset.

Writes metrics, predictions, every plot and one HTML report; with several datasets, one report per
dataset plus a cross-dataset table.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ferkit.data import FaceDataset, evaluation_split
from ferkit.data.classes import ClassMatch, match_classes
from ferkit.data.decode import decode_full
from ferkit.data.sources import Source
from ferkit.data.spec import DataSpec, run_data_spec
from ferkit.errors import FerkitError
from ferkit.evaluation import plots, robustness
from ferkit.evaluation.metrics import NO_FACE, compute_metrics, reliability_bins, text_report
from ferkit.evaluation.report import (
    image_html,
    markdown_summary,
    metrics_tables,
    pre_html,
    table_html,
    write_html,
)
from ferkit.fileio import atomic_write_text
from ferkit.inference.backends import TorchBackend
from ferkit.inference.detect import as_hwc
from ferkit.inference.recognizer import SHIPPED_TTA, Recognizer
from ferkit.models.predict import TTA
from ferkit.models.preprocess import Preprocessing
from ferkit.training.config import TrainConfig, load_config

DETECT_CHUNK = 32  # full-resolution photos decoded and detected at a time


@dataclass
class Model:
    """What is scored: one model or an ensemble (mean probability of ``members``)."""

    name: str
    members: list[Recognizer]
    paths: list[str]
    config: TrainConfig | None = None  # of the first run directory, when there is one
    data_spec: DataSpec | None = None  # the training data of the first run directory
    history: list[tuple[str, list[dict]]] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return self.members[0].class_names

    @property
    def pp(self) -> Preprocessing:
        return self.members[0].preprocessing

    @property
    def torch_model(self):
        """The torch module when the whole model is one (Grad-CAM, FLOPs, latency); else None."""
        backend = self.members[0].backend
        return backend.model if len(self.members) == 1 and isinstance(backend, TorchBackend) else None

    def set_tta(self, tta: str | None) -> str:
        """Apply ``tta`` (None = each model's own: flip for the shipped default, none otherwise)."""
        if tta is None:
            modes = {m.tta for m in self.members}
            return modes.pop() if len(modes) == 1 else "mixed"
        for m in self.members:
            m.tta = tta
        return tta

    def probabilities(
        self, faces: np.ndarray | Sequence[np.ndarray], tta: str, batch: int = 128
    ) -> np.ndarray:
        """(N, classes) mean probability of the members for face crops (an array or a list of any
        sizes), each with its TTA (`set_tta`; ``tta`` names it in reports)."""
        return sum(m.probabilities(faces, batch) for m in self.members) / len(self.members)


def _is_shipped(spec: str | os.PathLike) -> bool:
    return isinstance(spec, str) and spec in SHIPPED_TTA


def load_model(
    specs: Sequence[str | os.PathLike],
    detector: str = "none",
    yunet_model: str | os.PathLike | None = None,
    device: str = "cpu",
) -> Model:
    """Resolve each of ``specs`` (``default``/``fast``, run directory, ``.pt``, ``.onnx``) with
    `Recognizer.load`; several torch models become one ensemble module, mixed kinds are averaged."""
    specs = list(specs)
    if not specs:
        raise FerkitError("give a MODEL: default, fast, a run directory, a .pt or an .onnx file")
    for s in specs:
        if not _is_shipped(s) and not Path(s).exists():
            raise FerkitError(f"{s}: no such model (expected default, fast, a run directory, .pt or .onnx)")
    torch_only = len(specs) > 1 and not any(_is_shipped(s) or str(s).lower().endswith(".onnx") for s in specs)
    if torch_only:
        members = [Recognizer.load([Path(s) for s in specs], detector, device, yunet_model)]
    else:
        members = [Recognizer.load(s if _is_shipped(s) else Path(s), detector, device, yunet_model)
                   for s in specs]  # fmt: skip
    for spec, m in zip(specs[1:], members[1:], strict=False):
        if m.class_names != members[0].class_names:
            raise FerkitError(
                f"{spec}: classes {m.class_names} differ from {specs[0]}'s {members[0].class_names}"
            )
    runs = [Path(s) for s in specs if not _is_shipped(s) and (Path(s) / "config.yaml").is_file()]
    history = [(r.name, plots.read_history(r / "metrics.csv")) for r in runs if (r / "metrics.csv").is_file()]
    names = [str(s) if _is_shipped(s) else Path(s).name for s in specs]
    return Model(
        name=" + ".join(names),
        members=members,
        paths=[str(s) for s in specs],
        config=load_config(runs[0] / "config.yaml") if runs else None,
        data_spec=run_data_spec(runs[0]) if runs else None,
        history=history,
    )


@dataclass
class Scored:
    """A dataset scored by a model: its items (labels in the model's classes) and the predictions."""

    ds: FaceDataset
    labels: np.ndarray
    probs: np.ndarray
    found: np.ndarray  # False where the detector found no face
    split: str
    match: ClassMatch
    left_out: int = 0  # items of dataset classes the model lacks


def detect_and_classify(model: Model, ds: FaceDataset, tta: str) -> tuple[np.ndarray, np.ndarray]:
    """Whole photos → the detector → the largest face's square crop → probabilities, as `predict` does.

    Images are read at full resolution from the source (CSV rows: their stored pixels).
    """
    rec = model.members[0]
    probs = np.zeros((len(ds), len(model.class_names)), np.float32)
    found = np.zeros(len(ds), dtype=bool)
    for index, images in full_resolution_images(ds):
        detections = rec.detector.detect_many(images)
        crops, where = [], []
        for i, image, dets in zip(index, images, detections, strict=True):
            if dets:
                crops.append(rec.detector.crops(image, dets[:1])[0])
                where.append(i)
        if crops:
            probs[where] = model.probabilities(crops, tta)
            found[where] = True
    return probs, found


def full_resolution_images(ds: FaceDataset) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """(item indices, images) chunks decoded at full resolution, in the source's streaming order."""
    if ds.layout == "csv":
        for start in range(0, len(ds), DETECT_CHUNK):
            idx = np.arange(start, min(start + DETECT_CHUNK, len(ds)))
            yield idx.tolist(), list(ds.take(idx))
        return
    position = {s: i for i, s in enumerate(ds.sources.tolist())}
    index: list[int] = []
    images: list[np.ndarray] = []
    for name, data in Source(ds.origin).read(list(position)):
        dec = decode_full(data, "auto")
        if dec.pixels is None:
            raise FerkitError(f"{ds.origin}: {name}: {dec.reason}")
        index.append(position[name])
        images.append(as_hwc(dec.pixels, name))
        if len(images) == DETECT_CHUNK:
            yield index, images
            index, images = [], []
    if images:
        yield index, images


def stored_probabilities(model: Model, ds: FaceDataset, tta: str, chunk: int = 512) -> np.ndarray:
    """Probabilities of the stored (already cropped) faces, read a chunk at a time."""
    parts = [model.probabilities(ds.take(np.arange(i, min(i + chunk, len(ds)))), tta)
             for i in range(0, len(ds), chunk)]  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros((0, len(model.class_names)), np.float32)


def score(
    model: Model, data: str, split: str | None, tta: str, detector: str, class_map: dict[str, str] | None
) -> Scored:
    """Resolve the split (the one resolver), match classes, predict every item."""
    ds, split, _ = evaluation_split(data, split, model.data_spec)
    match = match_classes(ds.class_names, model.class_names, class_map)
    keep = match.to_model[ds.labels] >= 0
    ds = ds.subset(keep)
    if not len(ds):
        raise FerkitError(f"{data}: split {split!r} has no image of the model's classes")
    labels = match.to_model[ds.labels]
    if detector == "none":
        probs = stored_probabilities(model, ds, tta)
        found = np.ones(len(ds), dtype=bool)
    else:
        probs, found = detect_and_classify(model, ds, tta)
    return Scored(ds, labels, probs, found, split, match, int((~keep).sum()))


def write_predictions(path: Path, s: Scored, names: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["item", "true", "predicted", "confidence", *names])
    pred = s.probs.argmax(1)
    for i in range(len(s.ds)):
        guess, conf = (names[pred[i]], f"{s.probs[i, pred[i]]:.6f}") if s.found[i] else (NO_FACE, "")
        w.writerow([s.ds.sources[i], names[s.labels[i]], guess, conf] + [f"{p:.6f}" for p in s.probs[i]])
    atomic_write_text(path, buf.getvalue())


def evaluate(
    models: Sequence[str | os.PathLike], data: str | Sequence[str], out: str | os.PathLike,
    split: str | None = None, tta: TTA | None = None, gradcam_per_class: int = 3, detector: str = "none",
    class_map: dict[str, str] | None = None, yunet_model: str | os.PathLike | None = None,
    robustness: bool = False,
) -> dict:  # fmt: skip
    """Evaluate a model (or the mean of several) on one dataset, or on several (cross-dataset).

    Args:
        models: run directories, ``.pt``/``.onnx`` files, or ``default``/``fast``.
        data: a dataset source, or several (then one sub-folder each and a cross-dataset table).
        out: output folder.
        split: ``all``/``train``/``val``/``test``; default ``test`` on the model's own training
            source, ``all`` on any other.
        tta: one of `ferkit.models.preprocess.TTA_MODES`; None = the model's own (flip for the
            shipped default).
        detector: ``none`` for face crops, ``yunet``/``haar`` to find the face in whole photos
            first (images without a face count as misses).
        class_map: dataset class → model class, before the built-in synonyms.
        robustness: also score every shift of `ferkit.evaluation.corruptions` (robustness.csv).

    Returns:
        metrics.json's content (one dataset), or ``{"datasets": [...]}`` (several).
    """
    sources = [data] if isinstance(data, str | os.PathLike) else list(data)
    model = load_model(models, detector, yunet_model)
    used_tta = model.set_tta(tta)
    out = Path(out)
    if len(sources) == 1:
        return _evaluate_one(
            model, str(sources[0]), out, split, used_tta, gradcam_per_class, detector, class_map, robustness
        )
    rows = []
    taken: set[str] = set()
    for src in sources:
        sub = out / _slug(src, taken)
        m = _evaluate_one(
            model, str(src), sub, split, used_tta, gradcam_per_class, detector, class_map, robustness
        )
        rows.append(m | {"report": str(sub / "report.html")})
    write_cross_dataset(out, model, rows)
    return {"datasets": rows}


def _slug(source: str | os.PathLike, taken: set[str]) -> str:
    name = re.sub(r"(\.tar)?\.(gz|tgz|bz2|xz|zip|tar|csv)$", "", Path(source).name) or "data"
    slug, n = re.sub(r"[^A-Za-z0-9_.-]+", "_", name), 1
    while slug in taken:
        slug, n = f"{name}_{n}", n + 1
    taken.add(slug)
    return slug


def _evaluate_one(
    model: Model, data: str, out: Path, split: str | None, tta: str, per_class: int, detector: str,
    class_map: dict[str, str] | None, robust: bool = False,
) -> dict:  # fmt: skip
    s = score(model, data, split, tta, detector, class_map)
    names = model.class_names
    out.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(s.probs, s.labels, names, s.match.present, s.found) | {
        "split": s.split, "tta": tta, "models": model.paths, "data": str(data), "detector": detector,
        "classes": {"dropped": s.match.dropped, "absent": s.match.absent, "renamed": s.match.renamed,
                    "left_out_items": s.left_out},
        "notes": s.match.notes(),
    }  # fmt: skip
    if detector != "none":
        metrics["notes"].append(
            f"detector {detector}: {metrics.get('no_face', 0)} of {metrics['n']} images without a face, "
            "counted as misses"
        )
    if robust:
        metrics["robustness"] = robustness.evaluate_robustness(
            Path(data).name, s.ds, s.labels, lambda crops: model.probabilities(crops, tta),
            model.members[0].detector if detector != "none" else None, out,
        ).to_dict()  # fmt: skip
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "classification_report.txt",
                      text_report(s.probs, s.labels, names, s.match.present, s.found))  # fmt: skip
    write_predictions(out / "predictions.csv", s, names)
    figures = make_figures(model, s, metrics, out, per_class if detector == "none" else 0)
    title = f"ferkit evaluation — {model.name}"
    atomic_write_text(out / "report.md", markdown_summary(title, metrics))
    write_report(out / "report.html", model, metrics, figures, title)
    return metrics


def make_figures(model: Model, s: Scored, metrics: dict, out: Path, per_class: int) -> list[tuple[str, Path]]:
    rows, cols = metrics["labels"], metrics["predicted_labels"]
    cm = metrics["confusion_matrix"]
    f = s.found
    figs = [
        ("Confusion matrix (counts)", plots.confusion_png(cm, rows, out / "confusion_counts.png", False,
                                                          columns=cols)),
        ("Confusion matrix (row-normalised)",
         plots.confusion_png(cm, rows, out / "confusion_normalized.png", True, columns=cols)),
        ("Per-class F1", plots.bars_png(rows, [metrics["per_class"][c]["f1"] for c in rows], "Per-class F1",
                                        "F1", out / "per_class_f1.png")),
        ("Reliability diagram", plots.reliability_png(reliability_bins(s.probs[f], s.labels[f]),
                                                      metrics["ece"], out / "reliability.png")),
    ]  # fmt: skip
    if model.history:
        figs.append(
            ("Learning curves", plots.learning_curves_png(model.history, out / "learning_curves.png"))
        )
    figs.append(("Most confident mistakes", mistakes_png(s, model.class_names, out / "mistakes.png")))
    if per_class and model.torch_model is not None:
        figs.append(("Grad-CAM: correct (✓) and wrong (✗) predictions per class",
                     gradcam_png(model, s, per_class, out / "gradcam.png")))  # fmt: skip
    return figs


def mistakes_png(s: Scored, names: list[str], path: Path, n: int = 24) -> Path:
    pred, conf = s.probs.argmax(1), s.probs.max(1)
    wrong = np.flatnonzero((pred != s.labels) & s.found)
    top = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    titles = [f"true {names[s.labels[i]]}\npred {names[pred[i]]} {conf[i]:.2f}" for i in top]
    return plots.gallery_png(list(s.ds.take(top)) if len(top) else [], titles, path, cols=6,
                             suptitle="Most confident mistakes")  # fmt: skip


def gradcam_png(model: Model, s: Scored, per_class: int, path: Path) -> Path:
    """Rows = true classes present; left: most confident correct, right: most confident wrong."""
    from ferkit.evaluation.gradcam import gradcam_overlays, pick_examples  # torch-only: imported on use

    names, pred, pp = model.class_names, s.probs.argmax(1), model.pp
    picks = [p for p in pick_examples(s.labels, s.probs, per_class) if p[0] in s.match.present]
    chosen = [i for _, right, wrong in picks for i in right + wrong]
    images_chosen = s.ds.take(np.array(chosen, dtype=int))
    overlays = (
        gradcam_overlays(model.torch_model, images_chosen, [int(pred[i]) for i in chosen], pp)
        if chosen
        else []
    )
    by_index = dict(zip(chosen, overlays, strict=True))
    blank = np.full((pp.input_size, pp.input_size, 3), 255, np.uint8)
    images, titles = [], []
    for c, right, wrong in picks:
        for group, mark in ((right, "✓"), (wrong, "✗")):
            for k in range(per_class):
                i = group[k] if k < len(group) else None
                images.append(by_index[i] if i is not None else blank)
                titles.append(
                    f"{names[c]} {mark} {names[pred[i]]} {s.probs[i].max():.2f}" if i is not None else ""
                )
    return plots.gallery_png(images, titles, path, cols=2 * per_class,
                             suptitle="Grad-CAM (last conv stage) for the predicted class")  # fmt: skip


def write_report(
    path: Path, model: Model, metrics: dict, figures: list[tuple[str, Path]], title: str
) -> Path:
    sections = [("Headline metrics", metrics_tables(metrics))]
    if metrics["notes"]:
        sections.append(
            ("Notes", "<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in metrics["notes"]) + "</ul>")
        )
    sections += [(heading, image_html(png, heading)) for heading, png in figures]
    for p in model.paths:
        data_json = Path(p) / "data.json"
        if data_json.is_file():
            sections.append((f"Data summary — {Path(p).name}", pre_html(data_json.read_text())))
    if model.config is not None:
        config = yaml.safe_dump(model.config.model_dump(mode="json"), sort_keys=False)
        sections.append((f"Run config — {Path(model.paths[0]).name}", pre_html(config)))
    subtitle = (
        f"split {metrics['split']} · n = {metrics['n']} · TTA {metrics['tta']} · "
        f"detector {metrics['detector']} · data {metrics['data']}"
    )
    return write_html(path, title, subtitle, sections)


def _esc(text: str) -> str:
    return html.escape(text)


CROSS_COLUMNS = ["data", "split", "n", "no face", "classes", "accuracy", "macro-F1", "weighted-F1", "ECE"]


def cross_row(m: dict) -> list:
    return [m["data"], m["split"], m["n"], m.get("no_face", 0), len(m["labels"]), m["accuracy"],
            m["macro"]["f1"], m["weighted"]["f1"], m["ece"]]  # fmt: skip


def write_cross_dataset(out: Path, model: Model, rows: list[dict]) -> None:
    """cross_dataset.json/.md and an HTML page with one row per dataset, linking each report."""
    atomic_write_text(out / "cross_dataset.json", json.dumps(rows, indent=2))
    md = ["| " + " | ".join(CROSS_COLUMNS) + " |", "|" + "---|" * len(CROSS_COLUMNS)]
    md += ["| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in cross_row(m)) + " |"
           for m in rows]  # fmt: skip
    atomic_write_text(out / "cross_dataset.md", "\n".join(md) + "\n")
    links = "".join(
        f"<li><a href='{Path(m['report']).relative_to(out)}'>{_esc(m['data'])}</a></li>" for m in rows
    )
    sections = [("Cross-dataset results", table_html(CROSS_COLUMNS, [cross_row(m) for m in rows])),
                ("Per-dataset reports", f"<ul>{links}</ul>")]  # fmt: skip
    notes = [f"{m['data']}: {n}" for m in rows for n in m["notes"]]
    if notes:
        sections.append(("Notes", "<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>"))
    write_html(out / "report.html", f"ferkit cross-dataset evaluation — {model.name}",
               f"TTA {rows[0]['tta']} · detector {rows[0]['detector']}", sections)  # fmt: skip
