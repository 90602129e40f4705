"""Splits, resolved in one place: a data spec + a source → train/val/test (or one pool, ``all``).

Rules: a source with its own splits (FER2013 CSV, split folders) keeps them and a pool split is applied
only to a pool; re-splitting pre-split data needs ``split.resplit`` and never moves the official test
split; ``split.group_by`` keeps every group (e.g. one person's photos) inside a single split.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ferkit.data.dataset import FaceDataset, load_dataset
from ferkit.data.layout import POOL_SPLIT
from ferkit.data.spec import DataSpec, SplitSpec
from ferkit.errors import FerkitError

RESPLIT_POOL = "_resplit"


def stratified_assign(labels: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Part index (0..len(ratios)-1) per item; each class is divided in the given ratios.

    Counts per class use largest-remainder rounding, so tiny classes (a handful of images) still
    reach every part when they can, and the result depends only on labels, ratios and seed.
    """
    ratios = _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    part = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        exact = ratios * len(idx)
        counts = np.floor(exact).astype(int)
        for k in np.argsort(-(exact - counts), kind="stable")[: len(idx) - counts.sum()]:
            counts[k] += 1
        while len(idx) >= len(ratios) and (counts == 0).any():  # every part sees every class
            counts[np.argmax(counts)] -= 1
            counts[np.argmin(counts)] += 1
        part[idx] = np.repeat(np.arange(len(ratios)), counts)
    return part


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    ratios = np.asarray(ratios, dtype=np.float64)
    if (ratios <= 0).any() or not np.isclose(ratios.sum(), 1.0, atol=1e-6):
        raise FerkitError(f"split ratios must be positive and sum to 1, got {ratios.tolist()}")
    return ratios


def grouped_assign(labels: np.ndarray, groups: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Like `stratified_assign`, but every group lands in one part (scikit-learn's StratifiedGroupKFold).

    Parts are cut off one after another from the end (test, then val): each cut takes the fold of a
    seeded ``StratifiedGroupKFold`` with about the wanted share, so ratios are met approximately.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    ratios = _check_ratios(ratios)
    part = np.zeros(len(labels), dtype=np.int64)
    left = np.arange(len(labels))
    for k in range(len(ratios) - 1, 0, -1):
        share = ratios[k] / ratios[: k + 1].sum()
        folds = max(2, round(1 / share))
        if len(np.unique(groups[left])) < folds:
            raise FerkitError(f"data.split.group_by: {len(np.unique(groups[left]))} groups cannot be split "
                              f"by ratios {ratios.tolist()}")  # fmt: skip
        cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, held = next(cv.split(np.zeros(len(left)), labels[left], groups[left]))
        part[left[held]] = k
        left = np.delete(left, held)
    return part


def split_pool(
    ds: FaceDataset,
    ratios: Sequence[float],
    names: Sequence[str] = ("train", "val", "test"),
    seed: int = 42,
    source_split: str | None = None,
    groups: np.ndarray | None = None,
) -> FaceDataset:
    """Re-split the items of ``source_split`` (default: all items) into ``names`` by ``ratios``.

    Items of other splits keep theirs, so "split 12.5 % of Training off as validation" leaves
    the official test split untouched. With ``groups`` (one id per item) no group spans two parts.
    """
    names = list(names)[: len(ratios)]
    if len(names) != len(ratios):
        raise FerkitError(f"{len(ratios)} split ratios need as many names, got {names}")
    mask = np.ones(len(ds), dtype=bool) if source_split is None else ds.splits == source_split
    if not mask.any():
        raise FerkitError(f"cannot split {source_split!r}: {ds.origin} has splits {ds.split_names()}")
    clash = set(ds.splits[~mask].tolist()) & set(names)
    if clash:
        raise FerkitError(f"split names {sorted(clash)} already exist in {ds.origin}; choose other names")
    if groups is None:
        parts = stratified_assign(ds.labels[mask], ratios, seed)
    else:
        parts = grouped_assign(ds.labels[mask], np.asarray(groups)[mask], ratios, seed)
    splits = ds.splits.astype(object)
    splits[np.flatnonzero(mask)] = np.array(names, dtype=object)[parts]
    return ds.with_splits(splits.astype(str))


def stratified_subset(ds: FaceDataset, n: int, seed: int = 0) -> FaceDataset:
    """``n`` items with the class proportions of ``ds`` (quick smoke runs on a slice of the data)."""
    if n >= len(ds):
        return ds
    keep = stratified_assign(ds.labels, [n / len(ds), 1 - n / len(ds)], seed) == 0
    return ds.subset(keep)


def item_groups(ds: FaceDataset, group_by: str) -> np.ndarray:
    """One group id per item from a regex over its relative path, or from a CSV of ``path,group``.

    A regex uses its first capture group (else the whole match); an item it does not match, or a
    file the CSV does not list, is an error naming it.
    """
    if group_by.lower().endswith(".csv") and Path(os.path.expanduser(group_by)).is_file():
        return _groups_from_csv(ds, Path(os.path.expanduser(group_by)))
    try:
        pattern = re.compile(group_by)
    except re.error as exc:
        raise FerkitError(
            f"data.split.group_by: {group_by!r} is neither a CSV file nor a regex ({exc})"
        ) from None
    out = []
    for src in ds.sources.tolist():
        m = pattern.search(src)
        if m is None:
            raise FerkitError(f"data.split.group_by: regex {group_by!r} does not match {src!r}")
        out.append(m.group(1) if pattern.groups else m.group(0))
    return np.array(out, dtype=str)


def _groups_from_csv(ds: FaceDataset, path: Path) -> np.ndarray:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FerkitError(f"{path}: cannot read group CSV: {exc}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "group"]:
        rows = rows[1:]
    bad = next((i for i, r in enumerate(rows) if len(r) < 2), None)
    if bad is not None:
        raise FerkitError(f"{path}: row {bad + 1}: expected path,group")
    table = {r[0].strip().lstrip("./"): r[1].strip() for r in rows}
    out = []
    for src in ds.sources.tolist():
        key = next((k for k in _suffixes(src) if k in table), None)
        if key is None:
            raise FerkitError(f"{path}: no group for {src!r}")
        out.append(table[key])
    return np.array(out, dtype=str)


def _suffixes(rel: str) -> list[str]:
    """``a/b/c.jpg`` → ``[a/b/c.jpg, b/c.jpg, c.jpg]``: CSV paths may omit an archive's wrapper folder."""
    parts = rel.split("/")
    return ["/".join(parts[i:]) for i in range(len(parts))]


@dataclass
class ResolvedSplit:
    """How a source was split, saved with a run and printed: enough to audit and repeat it."""

    source: str
    layout: str
    method: str  # "official" | "pool" | "unsplit pool" | "divided <split>" | "resplit"
    counts: dict[str, dict[str, int]]
    ratios: list[float] | None = None
    names: list[str] | None = None
    seed: int | None = None
    group_by: str | None = None
    groups: int | None = None
    groups_across_splits: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        sizes = ", ".join(f"{s} {sum(c.values())}" for s, c in self.counts.items())
        how = self.method
        if self.ratios:
            how += (
                f" {'/'.join(f'{r:g}' for r in self.ratios)} → {'/'.join(self.names or [])}, seed {self.seed}"
            )
        if self.group_by:
            how += f", grouped by {self.group_by!r} ({self.groups} groups)"
        return "\n".join([f"splits of {self.source}: {how}: {sizes}", *(f"  note: {n}" for n in self.notes)])


def resolve_splits(ds: FaceDataset, split: SplitSpec | None) -> tuple[FaceDataset, ResolvedSplit]:
    """Apply a split spec to a loaded dataset under the rules in this module's docstring."""
    own = ds.split_names()
    pool = own == [POOL_SPLIT]
    notes: list[str] = []
    groups = item_groups(ds, split.group_by) if split and split.group_by else None
    if split is None:
        method = "unsplit pool" if pool else "official"
    elif split.source is not None:
        if split.source == "test" and not pool:
            raise FerkitError("data.split.source: the official test split is never re-split")
        if split.source not in own:
            raise FerkitError(f"data.split.source: {ds.origin} has no split {split.source!r} (it has {own})")
        ds = split_pool(ds, split.ratios, split.names, split.seed, split.source, groups)
        method = f"divided {split.source}"
    elif pool:
        ds = split_pool(ds, split.ratios, split.names, split.seed, None, groups)
        method = "pool"
    elif split.resplit:
        ds = _resplit(ds, split, groups)
        method = "resplit"
    else:
        method = "official"
        notes.append(
            f"the source has its own splits {own}: the pool split in data.split is not applied "
            "(data.split.resplit=true re-splits its non-test splits)"
        )
    info = ResolvedSplit(ds.origin, ds.layout, method, ds.class_counts(), notes=notes)
    if split is not None and method not in ("official", "unsplit pool"):
        info.ratios, info.names, info.seed = (
            list(split.ratios),
            list(split.names[: len(split.ratios)]),
            split.seed,
        )
    if groups is not None and split is not None:
        info.group_by, info.groups = split.group_by, len(np.unique(groups))
        info.groups_across_splits = group_overlap(ds.splits, groups)
    return ds, info


def _resplit(ds: FaceDataset, split: SplitSpec, groups: np.ndarray | None) -> FaceDataset:
    """Pool every split except the official test split and divide it by the spec's ratios."""
    names = list(split.names[: len(split.ratios)])
    if "test" in ds.split_names() and "test" in names:
        raise FerkitError(
            f"data.split.resplit: {ds.origin} has an official test split, which is never re-split; "
            "name the new parts without 'test', e.g. names: [train, val] with two ratios"
        )
    pooled = ds.with_splits(np.where(ds.splits == "test", "test", RESPLIT_POOL))
    return split_pool(pooled, split.ratios, names, split.seed, RESPLIT_POOL, groups)


def group_overlap(splits: np.ndarray, groups: np.ndarray) -> int:
    """Number of groups whose items sit in more than one split (leakage between splits)."""
    return len(leaked_groups(splits, groups))


def leaked_groups(splits: np.ndarray, groups: np.ndarray) -> dict[str, list[str]]:
    """{group: its splits} for every group found in more than one split."""
    seen: dict[str, set[str]] = {}
    for g, s in zip(groups.tolist(), splits.tolist(), strict=True):
        seen.setdefault(g, set()).add(s)
    return {g: sorted(s) for g, s in seen.items() if len(s) > 1}


def group_report(ds: FaceDataset, group_by: str, limit: int = 20) -> dict:
    """For `ferkit data inspect --group-by`: how many groups, which ones cross splits (leakage)."""
    groups = item_groups(ds, group_by)
    leaked = leaked_groups(ds.splits, groups)
    return {
        "group_by": group_by,
        "groups": len(np.unique(groups)),
        "across_splits": len(leaked),
        "examples": [{"group": g, "splits": s} for g, s in list(leaked.items())[:limit]],
    }


def load_splits(spec: DataSpec, progress: bool = True) -> tuple[FaceDataset, ResolvedSplit]:
    """Load ``spec.path`` as the spec says and resolve its splits; the one entry point for every command."""
    if not spec.path:
        raise FerkitError("data.path: no dataset given (use --data PATH)")
    ds = load_dataset(spec.path, image_size=spec.image_size, color=spec.color, progress=progress)
    return resolve_splits(ds, spec.split)


def select(ds: FaceDataset, split: str) -> FaceDataset:
    """One split's items; ``all`` = every item whatever its split."""
    return ds if split == POOL_SPLIT else ds.split(split)


def same_source(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def evaluation_split(
    data: str | os.PathLike, split: str | None, trained_on: DataSpec | None = None, progress: bool = True
) -> tuple[FaceDataset, str, ResolvedSplit]:
    """The items to score a model on, and the split's name.

    On the model's own training source (``trained_on.path``) its splits are resolved exactly as in
    training and the default is ``test`` (else its validation split); on any other source the
    source's own splits are used as they are and the default is ``all``.
    """
    own = trained_on is not None and trained_on.path and same_source(trained_on.path, data)
    spec = trained_on.model_copy(update={"path": str(data)}) if own else DataSpec(path=str(data))
    ds, info = load_splits(spec, progress)
    if split is None:
        names = ds.split_names()
        val = spec.val_split if spec.val_split != "auto" else ("val" if "val" in names else "test")
        split = ("test" if "test" in names else val) if own else POOL_SPLIT
    return select(ds, split), split, info


def wild_halves(ds: FaceDataset, seed: int = 0) -> FaceDataset:
    """A photo pool cut into two fixed stratified halves, ``train`` and ``val``.

    The protocol for a "wild validation set" when only one pool of real photos exists: the ``val``
    half is never trained on (it scores cross-domain accuracy), the ``train`` half may be.
    """
    return split_pool(ds, [0.5, 0.5], ["train", "val"], seed)
