"""Small-data validation: stratified K-fold, grouped so that no person is in two folds."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ferkit.errors import FerkitError


def kfold(
    labels: np.ndarray, k: int, groups: np.ndarray | None, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of K stratified folds; with ``groups``, each group in one fold."""
    if k < 2:
        raise FerkitError(f"--folds must be at least 2, not {k}")
    if groups is not None and len(set(groups.tolist())) < k:
        raise FerkitError(f"--folds {k}: only {len(set(groups.tolist()))} groups; use fewer folds")
    if groups is None and np.bincount(labels).max() < k:
        raise FerkitError(f"--folds {k}: no class has {k} items")
    if groups is None:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(labels)), labels))
    splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def inner_folds(labels: np.ndarray, groups: np.ndarray | None, seed: int, k: int = 3) -> list:
    """Folds for choosing the regularisation inside one training fold (fewer when data is tiny)."""
    available = len(set(groups.tolist())) if groups is not None else int(np.bincount(labels).max())
    return kfold(labels, min(k, available), groups, seed) if available >= 2 else []


def check_groups_apart(folds: list[tuple[np.ndarray, np.ndarray]], groups: np.ndarray) -> None:
    """Raise when any group has items on both sides of a fold (a leak of people into the test)."""
    for i, (train, test) in enumerate(folds):
        shared = set(groups[train].tolist()) & set(groups[test].tolist())
        if shared:
            raise FerkitError(f"fold {i + 1}: groups {sorted(shared)[:5]} are in training and test")
