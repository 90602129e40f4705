"""Stratified, seeded splits of a pool of items (e.g. 70/15/15 of a phone-photo dataset)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferkit.data.dataset import FaceDataset
from ferkit.errors import FerkitError


def stratified_assign(labels: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Part index (0..len(ratios)-1) per item; each class is divided in the given ratios.

    Counts per class use largest-remainder rounding, so tiny classes (a handful of images) still
    reach every part when they can, and the result depends only on labels, ratios and seed.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if (ratios <= 0).any() or not np.isclose(ratios.sum(), 1.0, atol=1e-6):
        raise FerkitError(f"split ratios must be positive and sum to 1, got {ratios.tolist()}")
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


def split_pool(
    ds: FaceDataset,
    ratios: Sequence[float],
    names: Sequence[str] = ("train", "val", "test"),
    seed: int = 42,
    source_split: str | None = None,
) -> FaceDataset:
    """Re-split the items of ``source_split`` (default: all items) into ``names`` by ``ratios``.

    Items of other splits keep theirs, so "split 12.5 % of Training off as validation" leaves
    the official test split untouched.
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
    parts = stratified_assign(ds.labels[mask], ratios, seed)
    splits = ds.splits.astype(object)
    splits[np.flatnonzero(mask)] = np.array(names, dtype=object)[parts]
    return ds.with_splits(splits.astype(str))


def stratified_subset(ds: FaceDataset, n: int, seed: int = 0) -> FaceDataset:
    """``n`` items with the class proportions of ``ds`` (quick smoke runs on a slice of the data)."""
    if n >= len(ds):
        return ds
    keep = stratified_assign(ds.labels, [n / len(ds), 1 - n / len(ds)], seed) == 0
    return ds.subset(keep)


def wild_halves(ds: FaceDataset, seed: int = 0) -> FaceDataset:
    """A photo pool cut into two fixed stratified halves, ``train`` and ``val``.

    The protocol for a "wild validation set" when only one pool of real photos exists: the ``val``
    half is never trained on (it scores cross-domain accuracy), the ``train`` half may be.
    """
    return split_pool(ds, [0.5, 0.5], ["train", "val"], seed)
