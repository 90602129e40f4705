"""Turn a config's data section into train/val sets and a batch source on the training device."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ferkit.data import (
    DataSpec,
    FaceDataset,
    ResolvedSplit,
    drop_from_training,
    load_splits,
    stratified_subset,
)
from ferkit.data.integrity import exact_duplicates
from ferkit.errors import FerkitError

RESIDENT_LIMIT = 2 << 30  # keep a training split on the device when it is under 2 GiB


@dataclass
class TrainData:
    train: FaceDataset
    val: FaceDataset
    val_split: str
    split: ResolvedSplit
    notes: dict = field(default_factory=dict)


def prepare_data(spec: DataSpec, seed: int) -> TrainData:
    """Load, (re)split, clean and subset as the config says; errors name the config key."""
    ds, split = load_splits(spec)
    if ds.split_names() == ["all"]:
        raise FerkitError(
            f"{spec.path} is one pool of class folders: set data.split, e.g. "
            "--set 'data.split={ratios: [0.7, 0.15, 0.15]}'"
        )
    notes: dict = {"skipped_files": len(ds.skipped)}
    if spec.drop_leaked or spec.drop_conflicting:
        ds, notes["dropped_from_training"] = drop_from_training(
            ds, exact_duplicates(ds), spec.train_split, spec.drop_leaked, spec.drop_conflicting
        )
    names = ds.split_names()
    val_split = spec.val_split
    if val_split == "auto":
        val_split = "val" if "val" in names else "test"
    for key, name in (("data.train_split", spec.train_split), ("data.val_split", val_split)):
        if name not in names:
            raise FerkitError(f"{key}: split {name!r} not in {spec.path} (it has {names})")
    train = ds.split(spec.train_split)
    if spec.subset:
        train = stratified_subset(train, spec.subset, seed)
    notes |= {"train": len(train), "val": int((ds.splits == val_split).sum()), "val_split": val_split}
    return TrainData(train, ds.split(val_split), val_split, split, notes)


class BatchSource:
    """uint8 (N, C, H, W) batches on the device: resident there when small, gathered per batch if not."""

    def __init__(self, ds: FaceDataset, device: torch.device, mode: str = "auto"):
        self.ds, self.device = ds, device
        nbytes = len(ds) * ds.image_size**2 * ds.channels
        self.resident = mode == "always" or (mode == "auto" and nbytes <= RESIDENT_LIMIT)
        if self.resident:
            self.tensor = torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous().to(device)

    def get(self, idx: np.ndarray) -> torch.Tensor:
        if self.resident:
            return self.tensor[torch.from_numpy(idx).to(self.device)]
        batch = torch.from_numpy(np.ascontiguousarray(self.ds.take(idx))).permute(0, 3, 1, 2)
        return batch.to(self.device, non_blocking=True)
