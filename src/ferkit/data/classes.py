"""Match a dataset's class names to a model's: case-insensitive, built-in synonyms, explicit maps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ferkit.errors import FerkitError

# canonical name → the spellings expression datasets use for it
SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("anger", "angry", "mad", "rage"),
    "disgust": ("disgust", "disgusted", "disgusting", "disgusting face"),
    "fear": ("fear", "fearful", "afraid", "scared"),
    "happy": ("happy", "happiness", "joy", "joyful", "smile", "smiling"),
    "sad": ("sad", "sadness", "sorrow", "unhappy"),
    "surprise": ("surprise", "surprised", "surprising", "shock", "shocked"),
    "neutral": ("neutral", "normal", "calm", "no emotion", "neutrality"),
    "contempt": ("contempt", "contemptuous"),
}
_CANONICAL = {s: name for name, spellings in SYNONYMS.items() for s in spellings}


def canonical(name: str) -> str:
    """``"Happiness"`` → ``"happy"``; unknown names come back lower-cased with ``_``/``-`` as spaces."""
    key = " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())
    return _CANONICAL.get(key, key)


def parse_class_map(text: str | None) -> dict[str, str]:
    """``"old=new,old2=new2"`` → ``{"old": "new", ...}`` (dataset class → model class)."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise FerkitError(f"--class-map: {item.strip()!r} is not old=new (e.g. normal=neutral,joy=happy)")
        out[old.strip()] = new.strip()
    return out


@dataclass
class ClassMatch:
    """How dataset labels become model labels."""

    to_model: np.ndarray  # dataset class index → model class index, -1 = the model lacks it
    present: list[int]  # model classes the dataset has (metrics are computed on these)
    dropped: list[str] = field(default_factory=list)  # dataset classes the model lacks (items left out)
    absent: list[str] = field(default_factory=list)  # model classes the dataset lacks
    renamed: dict[str, str] = field(default_factory=dict)  # dataset name → model name, where they differ

    def notes(self) -> list[str]:
        lines = [f"dataset class {a!r} scored as the model's {b!r}" for a, b in self.renamed.items()]
        if self.dropped:
            lines.append(f"dataset classes the model lacks, left out: {', '.join(self.dropped)}")
        if self.absent:
            lines.append(
                f"model classes not in the dataset: {', '.join(self.absent)} (metrics on the "
                f"{len(self.present)} classes present; predictions still over all classes)"
            )
        return lines


def match_classes(
    dataset: Sequence[str], model: Sequence[str], class_map: dict[str, str] | None = None
) -> ClassMatch:
    """Map each dataset class to a model class by ``class_map``, then by canonical name."""
    by_canon = {canonical(m): i for i, m in enumerate(model)}
    explicit = {canonical(k): v for k, v in (class_map or {}).items()}
    unknown = [k for k in (class_map or {}) if canonical(k) not in {canonical(d) for d in dataset}]
    if unknown:
        raise FerkitError(f"--class-map: {unknown} not among the dataset's classes {list(dataset)}")
    to_model = np.full(len(dataset), -1, dtype=np.int64)
    for i, name in enumerate(dataset):
        target = explicit.get(canonical(name), name)
        idx = by_canon.get(canonical(target))
        if idx is None and canonical(name) in explicit:
            raise FerkitError(f"--class-map: {target!r} is not one of the model's classes {list(model)}")
        to_model[i] = -1 if idx is None else idx
    present = sorted(set(to_model[to_model >= 0].tolist()))
    if not present:
        raise FerkitError(f"no dataset class {list(dataset)} matches the model's classes {list(model)}")
    return ClassMatch(
        to_model=to_model,
        present=present,
        dropped=[d for d, t in zip(dataset, to_model, strict=True) if t < 0],
        absent=[m for i, m in enumerate(model) if i not in present],
        renamed={d: model[t] for d, t in zip(dataset, to_model, strict=True) if t >= 0 and d != model[t]},
    )
