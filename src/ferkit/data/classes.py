"""Match a dataset's class names to a model's: case-insensitive, built-in synonyms, explicit maps."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferkit.errors import FerkitError

if TYPE_CHECKING:
    from ferkit.data.dataset import FaceDataset

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


def read_class_map(spec: str | None) -> dict[str, str]:
    """``--class-map``: a file of ``old=new`` lines (or ``old,new`` CSV rows), or the inline form."""
    if not spec:
        return {}
    path = Path(os.path.expanduser(spec))
    if not path.is_file():
        return parse_class_map(spec)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FerkitError(f"--class-map {path}: cannot read it ({exc})") from None
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    items = [ln if "=" in ln else ln.replace(",", "=", 1) for ln in lines if ln]
    return parse_class_map(",".join(items))


def select_classes(ds: FaceDataset, keep: Sequence[str] | None, class_map: dict[str, str]) -> FaceDataset:
    """The items of classes ``keep`` (all when None), renamed by ``class_map`` (several old names
    onto one new name merge those classes); class order: first appearance after renaming."""
    names = list(ds.class_names)
    unknown = [c for c in list(keep or []) + list(class_map) if c not in names]
    if unknown:
        raise FerkitError(f"unknown class {unknown[0]!r}: the dataset's classes are {names}")
    kept = [c for c in names if keep is None or c in keep]
    target = list(dict.fromkeys(class_map.get(c, c) for c in kept))
    new_label = np.array([target.index(class_map.get(c, c)) if c in kept else -1 for c in names])
    mask = new_label[ds.labels] >= 0
    sub = ds.subset(mask)
    return replace(sub, labels=new_label[sub.labels], class_names=tuple(target))
