"""Data layer: load any expression dataset into one in-memory form, check it, split it.

Knows nothing of models or training.
"""

from ferkit.data.dataset import FaceDataset, load_dataset
from ferkit.data.integrity import analyse, dataset_report, drop_from_training
from ferkit.data.spec import DataSpec, SplitSpec
from ferkit.data.split import (
    ResolvedSplit,
    evaluation_split,
    load_splits,
    resolve_splits,
    split_pool,
    stratified_subset,
    wild_halves,
)
from ferkit.data.weights import balanced_class_weights

__all__ = [
    "DataSpec",
    "FaceDataset",
    "ResolvedSplit",
    "SplitSpec",
    "analyse",
    "balanced_class_weights",
    "dataset_report",
    "drop_from_training",
    "evaluation_split",
    "load_dataset",
    "load_splits",
    "resolve_splits",
    "split_pool",
    "stratified_subset",
    "wild_halves",
]
