"""`ferkit adapt`: ferkit's expression model, adapted to a user's labelled photos.

The base model's faces and outputs are computed once (`faces`); ``head`` fits a linear probe per
member (`probe`), ``finetune`` then trains the first member from its fitted head (`finetune`).
Validation is K-fold (grouped by person when asked) or the dataset's own split; the final model is
fitted on all the data (K-fold) or the training split, and written as an ordinary run directory.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score
from threadpoolctl import threadpool_limits

from ferkit.adapt.faces import Faces, dataset_faces
from ferkit.adapt.finetune import finetune_member
from ferkit.adapt.folds import check_groups_apart, kfold
from ferkit.adapt.model import adapted_bundle, probe_member
from ferkit.adapt.probe import Choice, LinearMap, fit_member, member_inputs, view_probabilities
from ferkit.data import FaceDataset, load_dataset
from ferkit.data.classes import match_classes, read_class_map, select_classes
from ferkit.data.split import item_groups, split_pool
from ferkit.errors import FerkitError
from ferkit.fileio import atomic_write_text
from ferkit.inference.backends import TorchBackend
from ferkit.inference.recognizer import SHIPPED_TTA, Recognizer
from ferkit.models.bundle import ModelBundle
from ferkit.models.factory import load_bundle
from ferkit.training.checkpoint import atomic_save
from ferkit.training.start import read_start

Mode = Literal["head", "finetune"]


@dataclass
class AdaptOptions:
    """What ``ferkit adapt`` was asked to do (saved in ``adapt.json``)."""

    model: str = "default"
    mode: Mode = "head"
    folds: int | None = None
    group_by: str | None = None
    classes: list[str] | None = None
    class_map: str | None = None
    detector: str = "yunet"
    yunet_model: str | None = None
    seed: int = 0
    epochs: int = 4  # finetune
    unfreeze_last: int = 30  # finetune: parameterised backbone layers trained


@dataclass
class FoldScore:
    """One validation fold: the adapted model against the base model used as it is (zero-shot)."""

    n: int
    accuracy: float
    macro_f1: float
    accuracy_no_tta: float
    zero_shot_accuracy: float | None
    zero_shot_macro_f1: float | None = None
    choices: list[dict] = field(default_factory=list)


@dataclass
class Validation:
    """How the adapted model was validated; ``cv.json`` holds it."""

    mode: str
    method: str  # "k-fold" | "split"
    folds: int
    n: int
    no_face: int
    class_names: list[str]
    group_by: str | None
    groups: int | None
    per_fold: list[FoldScore]
    confusion: list[list[int]]
    seconds: float = 0.0

    def _stat(self, key: str) -> tuple[float, float]:
        values = [getattr(f, key) for f in self.per_fold if getattr(f, key) is not None]
        return (float(np.mean(values)), float(np.std(values))) if values else (float("nan"), 0.0)

    def to_dict(self) -> dict:
        acc, sd = self._stat("accuracy")
        zero, zero_sd = self._stat("zero_shot_accuracy")
        return {
            "folds": self.folds, "method": self.method, "mode": self.mode, "n": self.n,
            "accuracy_mean": acc, "accuracy_sd": sd,
            "macro_f1_mean": self._stat("macro_f1")[0],
            "accuracy_no_tta_mean": self._stat("accuracy_no_tta")[0],
            "zero_shot_accuracy_mean": zero, "zero_shot_accuracy_sd": zero_sd,
            "zero_shot_macro_f1_mean": self._stat("zero_shot_macro_f1")[0],
            "below_zero_shot": bool(acc < zero) if zero == zero else False,
            "no_face": self.no_face, "group_by": self.group_by, "groups": self.groups,
            "class_names": self.class_names, "confusion": self.confusion, "seconds": round(self.seconds, 1),
            "per_fold": [asdict(f) for f in self.per_fold],
            "tta": "flip (accuracy_no_tta: the first view only)",
            "no_face_rule": "a photo without a detected face counts as wrong",
        }  # fmt: skip

    def lines(self) -> list[str]:
        d = self.to_dict()
        how = f"{self.folds}-fold" if self.method == "k-fold" else "held-out split"
        grouped = f", grouped by {self.group_by!r} ({self.groups} groups)" if self.group_by else ""
        out = [
            f"{self.mode}: {how}{grouped}, n = {self.n} ({self.no_face} without a face, counted wrong), "
            f"flip TTA",
            f"  accuracy {100 * d['accuracy_mean']:.2f} % ± {100 * d['accuracy_sd']:.2f}, "
            f"macro-F1 {d['macro_f1_mean']:.3f} (no TTA: {100 * d['accuracy_no_tta_mean']:.2f} %)",
        ]
        if d["zero_shot_accuracy_mean"] == d["zero_shot_accuracy_mean"]:
            out.append(f"  the base model as it is (zero-shot): {100 * d['zero_shot_accuracy_mean']:.2f} %")
        if d["below_zero_shot"]:
            out.append("  WARNING: the adapted model is below the base model used as it is on these folds")
        return out


def prepare_dataset(data: str | os.PathLike | FaceDataset, opts: AdaptOptions) -> FaceDataset:
    """The user's dataset with ``--classes`` / ``--class-map`` applied."""
    ds = data if isinstance(data, FaceDataset) else load_dataset(data)
    keep = [c.strip() for c in opts.classes] if opts.classes else None
    return select_classes(ds, keep, read_class_map(opts.class_map))


def base_bundle(model: str) -> ModelBundle:
    """The torch bundle of the base model, every member of an ensemble."""
    return read_start(f"ferkit:{model}" if model in SHIPPED_TTA else model)


class Adapter:
    """The base model's members, their frozen inputs over a dataset, and zero-shot scoring."""

    def __init__(self, opts: AdaptOptions, ds: FaceDataset):
        self.opts, self.ds = opts, ds
        self.bundle = base_bundle(opts.model)
        # The torch network the adapted model will run computes the features (for an int8 ONNX base
        # the rebuilt float network differs from the file); both views: training rows, and averaged.
        backend = TorchBackend(*load_bundle(self.bundle))
        self.rec = Recognizer(backend, opts.detector, opts.yunet_model, tta="flip")
        self.members = self.bundle.members or [self.bundle]
        self.faces: Faces = dataset_faces(self.rec, opts.model, ds, opts.detector)
        self.labels = ds.labels
        self.groups = item_groups(ds, opts.group_by) if opts.group_by else None
        self.match = match_classes(list(ds.class_names), self.rec.class_names)
        self.inputs = self._member_inputs()

    def _member_inputs(self) -> list[np.ndarray]:
        out, start = [], 0
        for m in self.members:
            if m.spec.head not in ("linear", "dropout"):
                raise FerkitError(
                    f"--model {self.opts.model}: adapt needs members with a linear head, not {m.spec.head!r}"
                )
            head = LinearMap(*(t.float().numpy() for t in m.classifier()))
            width = head.weight.shape[1]
            out.append(member_inputs(self.faces.embeddings[..., start : start + width], head))
            start += width
        return out

    def fit(self, idx: np.ndarray) -> tuple[list[LinearMap], list[Choice]]:
        """Probes for every member on the items ``idx`` that have a face."""
        idx = idx[self.faces.found[idx]]
        groups = None if self.groups is None else self.groups[idx]
        with threadpool_limits(1):  # many small fits: BLAS threads only contend (10x slower on 2 cores)
            fits = [
                fit_member(x[:, idx], self.labels[idx], groups, x.shape[-1] - len(self.rec.class_names),
                           len(self.ds.class_names), self.opts.seed)
                for x in self.inputs
            ]  # fmt: skip
        return [f[0] for f in fits], [f[1] for f in fits]

    def probabilities(
        self, heads: list[LinearMap], idx: np.ndarray, views: slice = slice(None)
    ) -> np.ndarray:
        """(len(idx), classes) mean over members of the flip-averaged probe probabilities."""
        return sum(
            view_probabilities(x[views, idx], h) for x, h in zip(self.inputs, heads, strict=True)
        ) / len(heads)

    def zero_shot(self, idx: np.ndarray) -> np.ndarray | None:
        """Predictions of the base model used as it is, in the user's classes (None: none shared)."""
        if not self.match.present:
            return None
        probs = self.faces.probs.mean(0)[idx]
        scores = np.where(self.match.to_model >= 0, probs[:, np.clip(self.match.to_model, 0, None)], -1.0)
        return scores.argmax(1)


def _metrics(y: np.ndarray, pred: np.ndarray, found: np.ndarray, n_classes: int) -> tuple[float, float]:
    """(accuracy, macro-F1) with the items without a face counted wrong."""
    pred = np.where(found, pred, -1)
    f1 = f1_score(y, pred, labels=list(range(n_classes)), average="macro", zero_division=0)
    return float((pred == y).mean()), float(f1)


def _score(adapter: Adapter, probs: np.ndarray, probs1: np.ndarray, test: np.ndarray, choices) -> FoldScore:
    y, found, k = adapter.labels[test], adapter.faces.found[test], len(adapter.ds.class_names)
    accuracy, macro_f1 = _metrics(y, probs.argmax(1), found, k)
    zero = adapter.zero_shot(test)
    zero_accuracy, zero_f1 = (None, None) if zero is None else _metrics(y, zero, found, k)
    return FoldScore(
        n=len(test),
        accuracy=accuracy,
        macro_f1=macro_f1,
        accuracy_no_tta=_metrics(y, probs1.argmax(1), found, k)[0],
        zero_shot_accuracy=zero_accuracy,
        zero_shot_macro_f1=zero_f1,
        choices=[asdict(c) for c in choices],
    )


def validation_folds(adapter: Adapter, opts: AdaptOptions) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """K folds, or the dataset's own split (train vs val/test), or a grouped 80/20 pool split."""
    ds = adapter.ds
    if opts.folds:
        folds = kfold(adapter.labels, opts.folds, adapter.groups, opts.seed)
    else:
        names = ds.split_names()
        if names == ["all"]:
            ds = split_pool(ds, [0.8, 0.2], ["train", "test"], opts.seed, groups=adapter.groups)
            names = ["train", "test"]
        held = "test" if "test" in names else "val" if "val" in names else None
        if "train" not in names or held is None:
            raise FerkitError(f"{ds.origin}: splits {names}: need train and val/test, or use --folds K")
        folds = [(np.flatnonzero(ds.splits == "train"), np.flatnonzero(ds.splits == held))]
    if adapter.groups is not None:
        check_groups_apart(folds, adapter.groups)
    return ("k-fold" if opts.folds else "split"), [(np.asarray(a), np.asarray(b)) for a, b in folds]


def _fit_model(adapter: Adapter, idx: np.ndarray, run_dir: Path) -> tuple[ModelBundle, list[LinearMap], list]:
    """The adapted bundle fitted on items ``idx`` (probes; in finetune mode member 0 trained too)."""
    heads, choices = adapter.fit(idx)
    names = list(adapter.ds.class_names)
    members = [probe_member(m, h, names) for m, h in zip(adapter.members, heads, strict=True)]
    if adapter.opts.mode == "finetune":
        idx = idx[adapter.faces.found[idx]]
        groups = None if adapter.groups is None else adapter.groups[idx]
        members[0] = finetune_member(
            members[0], adapter.faces.crops[idx], adapter.labels[idx], groups, run_dir,
            adapter.opts.epochs, adapter.opts.unfreeze_last, adapter.opts.seed,
        )  # fmt: skip
    source = {"adapt": {"base": adapter.opts.model, "mode": adapter.opts.mode, "items": len(idx)}}
    return adapted_bundle(members, source), heads, choices


def _bundle_views(bundle: ModelBundle, crops: np.ndarray) -> list[np.ndarray]:
    """Probabilities of each flip view of ``crops`` from the torch model of ``bundle``."""
    rec = Recognizer(TorchBackend(*load_bundle(bundle)), detector="none", tta="flip")
    return [p for p, _ in rec.outputs(crops)]


def _fold(
    adapter: Adapter, train: np.ndarray, test: np.ndarray, run_dir: Path
) -> tuple[FoldScore, np.ndarray]:
    bundle, heads, choices = _fit_model(adapter, train, run_dir)
    if adapter.opts.mode == "head":
        probs, probs1 = adapter.probabilities(heads, test), adapter.probabilities(heads, test, slice(0, 1))
    else:
        views = _bundle_views(bundle, adapter.faces.crops[test])
        probs, probs1 = sum(views) / len(views), views[0]
    return _score(adapter, probs, probs1, test, choices), probs.argmax(1)


def adapt(data: str | os.PathLike | FaceDataset, out: str | os.PathLike, opts: AdaptOptions) -> Validation:
    """Validate, fit the final model and write ``out`` (a run directory every command takes).

    Args:
        data: a labelled dataset (folder per class, archive, CSV; photos or face crops) or a loaded one.
        out: new directory: ``checkpoints/best.pt``, ``adapt.json``, ``cv.json`` (with ``--folds``).
        opts: base model, mode, folds, grouping, classes.

    Returns:
        The validation (per fold, pooled confusion, zero-shot comparison).
    """
    out = Path(out)
    if (out / "adapt.json").exists():
        raise FerkitError(f"{out}: already holds an adapted model; choose another --out")
    started = time.monotonic()
    ds = prepare_dataset(data, opts)
    adapter = Adapter(opts, ds)
    method, folds = validation_folds(adapter, opts)
    scores, truth, preds = [], [], []
    for k, (train, test) in enumerate(folds):
        score, pred = _fold(adapter, train, test, out / "runs" / f"fold-{k + 1}")
        scores.append(score)
        truth.append(adapter.labels[test])
        preds.append(np.where(adapter.faces.found[test], pred, -1))
        print(f"fold {k + 1}/{len(folds)}: accuracy {100 * score.accuracy:.2f} % (n = {score.n})", flush=True)
    final_idx = np.arange(len(ds)) if method == "k-fold" else folds[0][0]
    bundle, _, choices = _fit_model(adapter, final_idx, out / "runs" / "final")
    names = list(ds.class_names)
    y, p = np.concatenate(truth), np.concatenate(preds)
    validation = Validation(
        mode=opts.mode, method=method, folds=len(folds), n=int(sum(s.n for s in scores)),
        no_face=int((~adapter.faces.found[np.concatenate([t for _, t in folds])]).sum()),
        class_names=names, group_by=opts.group_by,
        groups=None if adapter.groups is None else len(set(adapter.groups.tolist())), per_fold=scores,
        confusion=confusion_matrix(y[p >= 0], p[p >= 0], labels=list(range(len(names)))).tolist(),
        seconds=time.monotonic() - started,
    )  # fmt: skip
    bundle.source = {**bundle.source, "adapt": {**bundle.source["adapt"], "validation": validation.to_dict()}}
    _write(out, bundle, validation, opts, adapter, [asdict(c) for c in choices])
    return validation


def _write(
    out: Path, bundle: ModelBundle, validation: Validation, opts: AdaptOptions, adapter, choices
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_save({"model": bundle.to_dict()}, out / "checkpoints" / "best.pt")
    summary = validation.to_dict()
    if opts.folds:
        atomic_write_text(out / "cv.json", json.dumps(summary, indent=2))
    record = {
        "options": asdict(opts), "validation": summary, "final_choices": choices,
        "classes": {"names": list(adapter.ds.class_names), "base": adapter.rec.class_names,
                    "notes": adapter.match.notes()},
        "preprocessing": bundle.preprocessing.to_dict(),
    }  # fmt: skip
    atomic_write_text(out / "adapt.json", json.dumps(record, indent=2))


def read_validation(run: str | os.PathLike) -> list[str] | None:
    """The validation lines of an adapted run directory (None for other models)."""
    path = Path(run) / "adapt.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())["validation"]
    except (OSError, ValueError, KeyError) as exc:
        raise FerkitError(f"{path}: not a ferkit adapt record ({exc})") from None
    fields = {
        f: summary[f]
        for f in ("mode", "method", "folds", "n", "no_face", "class_names", "group_by", "groups")
    }
    per_fold = [FoldScore(**f) for f in summary["per_fold"]]
    return Validation(**fields, per_fold=per_fold, confusion=summary["confusion"]).lines()
