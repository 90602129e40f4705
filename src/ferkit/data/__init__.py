"""Data layer: load any expression dataset into one in-memory form, check it, split it.

Knows nothing of models or training. Names are imported on first use, so reading one image
(`ferkit.data.decode`, used by inference) does not import the dataset tools (SciPy).
"""

from importlib import import_module

_HOMES = {
    "FaceDataset": "dataset",
    "load_dataset": "dataset",
    "analyse": "integrity",
    "dataset_report": "integrity",
    "drop_from_training": "integrity",
    "DataSpec": "spec",
    "SplitSpec": "spec",
    "ResolvedSplit": "split",
    "evaluation_split": "split",
    "load_splits": "split",
    "resolve_splits": "split",
    "split_pool": "split",
    "stratified_subset": "split",
    "wild_halves": "split",
    "balanced_class_weights": "weights",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"ferkit.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'ferkit.data' has no attribute {name!r}")
