"""Classification metrics the papers report, plus calibration (expected calibration error)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, precision_recall_fscore_support


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per-bin confidence, accuracy and count, for the reliability diagram."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out: dict[str, list[float]] = {"lower": [], "upper": [], "confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        mask = which == b
        out["lower"].append(float(edges[b]))
        out["upper"].append(float(edges[b + 1]))
        out["confidence"].append(float(conf[mask].mean()) if mask.any() else 0.0)
        out["accuracy"].append(float(correct[mask].mean()) if mask.any() else 0.0)
        out["count"].append(int(mask.sum()))
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins (Guo et al., 2017)."""
    r = reliability_bins(probs, labels, bins)
    n = max(1, sum(r["count"]))
    return float(
        sum(c / n * abs(a - f) for c, a, f in zip(r["count"], r["accuracy"], r["confidence"], strict=True))
    )


NO_FACE = "no face"


def compute_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    present: list[int] | None = None,
    found: np.ndarray | None = None,
) -> dict:
    """Accuracy, macro/weighted P/R/F1, per-class table, confusion matrix (counts) and ECE.

    Args:
        probs: (N, classes) probabilities over all the model's classes.
        labels: (N,) true model-class indices.
        class_names: the model's classes.
        present: classes the metrics are computed on (default all): a dataset with a subset of the
            model's classes is scored on its own classes, a prediction of another class is an error.
        found: (N,) False where the detector found no face: counted as a miss ("no face" column).

    Returns:
        A JSON-able dict; ``confusion_matrix`` rows are ``labels`` (true), columns
        ``predicted_labels`` (all classes, plus "no face" when there were misses).
    """
    present = list(range(len(class_names))) if present is None else list(present)
    found = np.ones(len(labels), dtype=bool) if found is None else np.asarray(found, dtype=bool)
    pred = np.where(found, probs.argmax(1), len(class_names))
    columns = list(class_names) + ([NO_FACE] if not found.all() else [])
    out: dict = {
        "n": len(labels),
        "labels": [class_names[i] for i in present],
        "predicted_labels": columns,
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
    }
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, pred, labels=present, average=avg, zero_division=0
        )
        out[avg] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=present, zero_division=0)
    out["per_class"] = {
        class_names[c]: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, c in enumerate(present)
    }
    cm = confusion_matrix(labels, pred, labels=list(range(len(columns))))
    out["confusion_matrix"] = cm[present].tolist()
    out["ece"] = expected_calibration_error(probs[found], labels[found])
    if not found.all():
        out["no_face"] = int((~found).sum())
    return out


def text_report(
    probs: np.ndarray, labels: np.ndarray, class_names: list[str], present: list[int] | None = None,
    found: np.ndarray | None = None,
) -> str:  # fmt: skip
    """scikit-learn's classification report layout (on the ``present`` classes; misses count as errors)."""
    present = list(range(len(class_names))) if present is None else list(present)
    pred = probs.argmax(1) if found is None else np.where(found, probs.argmax(1), len(class_names))
    return classification_report(
        labels, pred, labels=present, target_names=[class_names[c] for c in present], digits=4,
        zero_division=0,
    )  # fmt: skip
