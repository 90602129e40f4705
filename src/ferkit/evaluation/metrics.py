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


def compute_metrics(probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, macro/weighted P/R/F1, per-class table, confusion matrix (counts) and ECE."""
    classes = list(range(len(class_names)))
    pred = probs.argmax(1)
    out: dict = {"n": len(labels), "labels": list(class_names), "accuracy": float((pred == labels).mean())}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, pred, labels=classes, average=avg, zero_division=0
        )
        out[avg] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=classes, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(class_names)
    }
    out["confusion_matrix"] = confusion_matrix(labels, pred, labels=classes).tolist()
    out["ece"] = expected_calibration_error(probs, labels)
    return out


def text_report(probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> str:
    """scikit-learn's classification report layout."""
    return classification_report(
        labels, probs.argmax(1), labels=list(range(len(class_names))), target_names=class_names, digits=4,
        zero_division=0,
    )  # fmt: skip
