"""Data layer: load any expression dataset into one in-memory form, check it, split it.

Knows nothing of models or training.
"""

from ferkit.data.dataset import FaceDataset, load_dataset
from ferkit.data.integrity import analyse, dataset_report, drop_from_training
from ferkit.data.split import split_pool, stratified_subset, wild_halves
from ferkit.data.weights import balanced_class_weights

__all__ = [
    "FaceDataset",
    "analyse",
    "balanced_class_weights",
    "dataset_report",
    "drop_from_training",
    "load_dataset",
    "split_pool",
    "stratified_subset",
    "wild_halves",
]
