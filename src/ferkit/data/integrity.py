"""Data integrity: exact and near duplicates, train/test leakage, conflicting labels, distributions."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from scipy.fft import dctn
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ferkit.data.dataset import FaceDataset
from ferkit.data.imageops import resize
from ferkit.data.weights import balanced_class_weights


@dataclass
class DuplicateGroup:
    """Items holding the same picture (pixel-identical, or perceptually close for near duplicates)."""

    index: list[int]
    splits: list[str]
    labels: list[str]
    sources: list[str]

    @property
    def cross_split(self) -> bool:
        return len(set(self.splits)) > 1

    @property
    def conflicting(self) -> bool:
        return len(set(self.labels)) > 1


@dataclass
class IntegrityReport:
    exact: list[DuplicateGroup] = field(default_factory=list)
    near: list[DuplicateGroup] = field(default_factory=list)
    near_rule: NearDuplicateRule | None = None

    def summary(self, groups: list[DuplicateGroup]) -> dict[str, int]:
        return {
            "groups": len(groups),
            "files": sum(len(g.index) for g in groups),
            "cross_split_groups": sum(g.cross_split for g in groups),
            "conflicting_label_groups": sum(g.conflicting for g in groups),
        }


def _groups(ds: FaceDataset, members: list[np.ndarray]) -> list[DuplicateGroup]:
    return [
        DuplicateGroup(
            index=m.tolist(),
            splits=ds.splits[m].tolist(),
            labels=[ds.class_names[i] for i in ds.labels[m]],
            sources=ds.sources[m].tolist(),
        )
        for m in members
    ]


def exact_duplicates(ds: FaceDataset) -> list[DuplicateGroup]:
    """Groups of items whose decoded pixels are identical (same digest)."""
    _, inverse, counts = np.unique(ds.digests, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(counts)[:-1]
    members = [m for m in np.split(order, bounds) if len(m) > 1]
    return _groups(ds, members)


def perceptual_hashes(ds: FaceDataset, batch: int = 4096) -> np.ndarray:
    """64-bit DCT perceptual hash per image (robust to re-encoding, small resizes and brightness)."""
    out = np.empty(len(ds), dtype=np.uint64)
    weights = 1 << np.arange(64, dtype=np.uint64)
    for start in range(0, len(ds), batch):
        imgs = ds.take(np.arange(start, min(start + batch, len(ds))))
        gray = imgs.mean(axis=3, dtype=np.float32) if imgs.shape[3] > 1 else imgs[..., 0].astype(np.float32)
        small = resize(gray, 32, 32, axes=(1, 2))
        low = dctn(small, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(small), 64)
        bits = low > np.median(low[:, 1:], axis=1, keepdims=True)
        out[start : start + len(small)] = (bits.astype(np.uint64) * weights).sum(axis=1)
    return out


# Near duplicates: pHash candidates (loose), each confirmed on aligned thumbnails (strict).
# Thresholds chosen on benchmarks/near_duplicates.py (real photos; the numbers are in docs/dataset.md).
HASH_CANDIDATE = 12  # max Hamming distance of 64-bit pHashes for a pair to be compared at all
THUMB = 64  # thumbnail side for the confirmation
MARGIN = 6  # search ±MARGIN px of shift (≈ 9 %) and the scales below: crops and resizes re-align
SCALES = (0.94, 0.97, 1.0, 1.03, 1.06)
GRID = 4  # the aligned overlap is cut into GRID x GRID blocks
MIN_NCC = 0.95  # whole-overlap normalised correlation of a duplicate ...
MAX_BLOCK_DIFF = 0.40  # ... and no block differing more (mean |z_a - z_b|): an expression change does


@dataclass(frozen=True)
class NearDuplicateRule:
    """The two-stage test; the defaults are the measured ones."""

    hash_distance: int = HASH_CANDIDATE
    min_ncc: float = MIN_NCC
    max_block_diff: float = MAX_BLOCK_DIFF

    def key(self) -> str:
        return f"h{self.hash_distance}-c{self.min_ncc:g}-b{self.max_block_diff:g}-v2"


def thumbnails(ds: FaceDataset, index: np.ndarray, batch: int = 4096) -> np.ndarray:
    """(len(index), THUMB, THUMB) float32 grayscale thumbnails."""
    out = np.empty((len(index), THUMB, THUMB), np.float32)
    for start in range(0, len(index), batch):
        imgs = ds.take(index[start : start + batch])
        gray = imgs.mean(axis=3, dtype=np.float32) if imgs.shape[3] > 1 else imgs[..., 0].astype(np.float32)
        out[start : start + len(gray)] = resize(gray, THUMB, THUMB, axes=(1, 2))
    return out


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1.0)


def pair_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(correlation, worst block difference) of two thumbnails after the best alignment of ``b``'s
    centre (over shifts and small scale changes) onto ``a``; both robust to brightness and contrast."""
    inner = THUMB - 2 * MARGIN
    best = (-2.0, (0, 0), b)
    for scale in SCALES:
        side = max(inner, round(THUMB * scale))
        scaled = cv2.resize(b, (side, side), interpolation=cv2.INTER_LINEAR)
        off = (side - inner) // 2
        templ = np.ascontiguousarray(scaled[off : off + inner, off : off + inner])
        if templ.std() < 1e-3:
            continue
        res = cv2.matchTemplate(a, templ, cv2.TM_CCOEFF_NORMED)
        _, score, _, (x, y) = cv2.minMaxLoc(res)
        if score > best[0]:
            best = (float(score), (x, y), templ)
    ncc, (x, y), templ = best
    if ncc <= -2.0:  # a flat image: equal only to another flat image of any brightness
        return (1.0, 0.0) if a.std() < 1e-3 else (0.0, 1.0)
    diff = np.abs(_zscore(a[y : y + inner, x : x + inner]) - _zscore(templ))
    step = inner // GRID
    blocks = diff[: step * GRID, : step * GRID].reshape(GRID, step, GRID, step).mean(axis=(1, 3))
    return ncc, float(blocks.max())


def confirm_pairs(ds: FaceDataset, pairs: np.ndarray, rule: NearDuplicateRule) -> np.ndarray:
    """Boolean mask over (K, 2) candidate ``pairs``: which are near duplicates by the strict test."""
    if not len(pairs):
        return np.zeros(0, dtype=bool)
    items, inverse = np.unique(pairs, return_inverse=True)
    thumbs = thumbnails(ds, items)
    inverse = inverse.reshape(pairs.shape)
    keep = np.empty(len(pairs), dtype=bool)
    for k, (i, j) in enumerate(inverse):
        ncc, block = pair_similarity(thumbs[i], thumbs[j])
        keep[k] = ncc >= rule.min_ncc and block <= rule.max_block_diff
    return keep


def near_duplicates(ds: FaceDataset, rule: NearDuplicateRule | None = None) -> list[DuplicateGroup]:
    """Groups of photos linked by confirmed near-duplicate pairs (the same picture re-encoded,
    resized, slightly cropped or brightened; mirror images are *not* counted as duplicates).

    The component labels are stored beside the decoded cache (they depend only on its pixels), so a
    second inspection of the same dataset skips the pair search.
    """
    rule = rule or NearDuplicateRule()
    stored = ds.cache_dir / f"near-{rule.key()}.npy" if ds.cache_dir is not None else None
    if stored is not None and stored.is_file():
        comp = np.load(stored)
    else:
        pairs = candidate_pairs(perceptual_hashes(ds), rule.hash_distance)
        pairs = pairs[confirm_pairs(ds, pairs, rule)]
        comp = _components(pairs, len(ds))
        if stored is not None:
            with contextlib.suppress(OSError):  # a read-only cache only costs the speed-up
                tmp = stored.with_name(f".{stored.name}.tmp.npy")
                np.save(tmp, comp)
                os.replace(tmp, stored)
    counts = np.bincount(comp)
    order = np.argsort(comp, kind="stable")
    members = [m for m in np.split(order, np.cumsum(counts)[:-1]) if len(m) > 1]
    return _groups(ds, members)


def candidate_pairs(hashes: np.ndarray, threshold: int, block: int = 256) -> np.ndarray:
    """(K, 2) index pairs i < j with Hamming distance <= threshold (blockwise, memory stays small)."""
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, len(hashes), block):
        part = hashes[start : start + block, None]
        dist = np.bitwise_count(part ^ hashes[None, start:])
        i, j = np.nonzero(dist <= threshold)
        keep = j > i  # upper triangle: j indexes from `start`
        rows.append(i[keep] + start)
        cols.append(j[keep] + start)
    return np.stack([np.concatenate(rows), np.concatenate(cols)], axis=1)


def _components(pairs: np.ndarray, n: int) -> np.ndarray:
    """Connected-component label per item of the graph given by ``pairs``."""
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def analyse(ds: FaceDataset, near: NearDuplicateRule | None = NearDuplicateRule()) -> IntegrityReport:
    """Exact duplicates always; near duplicates too unless ``near`` is None."""
    report = IntegrityReport(exact=exact_duplicates(ds), near_rule=near)
    if near is not None and len(ds) > 1:
        report.near = near_duplicates(ds, near)
    return report


def drop_from_training(
    ds: FaceDataset,
    groups: list[DuplicateGroup],
    train_split: str = "train",
    leaked: bool = True,
    conflicting: bool = True,
) -> tuple[FaceDataset, int]:
    """Remove training items that also occur in another split (leakage) or carry conflicting labels.

    Evaluation splits are never altered. Returns the cleaned dataset and how many items went.
    """
    drop = np.zeros(len(ds), dtype=bool)
    for g in groups:
        if (leaked and g.cross_split) or (conflicting and g.conflicting):
            idx = np.array(g.index)
            drop[idx[ds.splits[idx] == train_split]] = True
    return ds.subset(~drop), int(drop.sum())


def dataset_report(ds: FaceDataset, integrity: IntegrityReport, weight_clip: float | None = None) -> dict:
    """The full JSON-able report of `ferkit data inspect`."""
    counts = ds.class_counts()
    totals = np.bincount(ds.labels, minlength=len(ds.class_names))
    present = totals[totals > 0]
    train = ds.labels[ds.splits == "train"] if "train" in counts else ds.labels
    report = {
        "source": ds.origin,
        "layout": ds.layout,
        "classes": list(ds.class_names),
        "splits": counts,
        "total": len(ds),
        "stored_image": {"size": ds.image_size, "channels": ds.channels},
        "imbalance_ratio": float(present.max() / present.min()) if len(present) else None,
        "corrupt": [{"path": p, "reason": r} for p, r in ds.skipped],
        "ignored": [{"path": p, "reason": r} for p, r in ds.ignored],
        "image_sizes": _histogram(f"{w}x{h}" for w, h in ds.orig_sizes.tolist()),
        "image_modes": _histogram(ds.orig_modes.tolist()),
        "duplicates": {**integrity.summary(integrity.exact), "examples": _examples(integrity.exact)},
        "class_weights": dict(
            zip(ds.class_names, balanced_class_weights(train, len(ds.class_names), weight_clip), strict=True)
        ),
    }
    if integrity.near_rule is not None:
        report["near_duplicates"] = {
            "rule": asdict(integrity.near_rule),
            **integrity.summary(integrity.near),
            "examples": _examples(integrity.near),
        }
    return report


def _histogram(values) -> dict[str, int]:
    return dict(Counter(values).most_common())


def _examples(groups: list[DuplicateGroup], limit: int = 50) -> list[dict]:
    """The most telling groups first: leaked and conflicting before plain ones."""
    ranked = sorted(groups, key=lambda g: (not g.conflicting, not g.cross_split, -len(g.index)))
    return [
        {
            "sources": g.sources,
            "splits": g.splits,
            "labels": g.labels,
            "cross_split": g.cross_split,
            "conflicting": g.conflicting,
        }
        for g in ranked[:limit]
    ]
