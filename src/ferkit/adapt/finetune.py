"""``ferkit adapt --mode finetune``: the training engine from the fitted probe (LP-FT).

Fine-tuning starts from the linear probe already fitted on the same faces (linear probing, then
fine-tuning: the new head is not random, so the first steps do not wreck the expression features).
Only the first member of an ensemble is trained (the smallest; training every member multiplies
the CPU time) and the others keep their probes. The last ``unfreeze_last`` parameterised layers of
the backbone train with frozen BatchNorm, a low learning rate and early stopping on a grouped
validation part; checkpoints and resume are the engine's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ferkit.data import FaceDataset
from ferkit.data.split import ResolvedSplit, split_pool
from ferkit.models.bundle import ModelBundle
from ferkit.models.factory import read_bundle
from ferkit.training.checkpoint import atomic_save
from ferkit.training.config import build_config
from ferkit.training.data import TrainData
from ferkit.training.engine import Trainer

VAL_SHARE = 0.15


def crops_dataset(crops: np.ndarray, labels: np.ndarray, class_names: list[str]) -> FaceDataset:
    """Face crops in memory as a `FaceDataset` the engine trains on."""
    digests = np.array([hashlib.blake2b(c.tobytes(), digest_size=16).digest() for c in crops], dtype="S16")
    n = len(crops)
    return FaceDataset(
        pixels=crops, labels=np.asarray(labels, np.int64), class_names=tuple(class_names),
        splits=np.full(n, "all"), sources=np.array([f"face {i}" for i in range(n)]), digests=digests,
        orig_sizes=np.tile(crops.shape[1:3], (n, 1)), orig_modes=np.full(n, "L"),
        origin="ferkit adapt", layout="crops",
    )  # fmt: skip


def _config(start: Path, epochs: int, unfreeze_last: int, seed: int):
    return build_config(
        {
            "seed": seed,
            "model": {"pretrained": str(start), "head": "probe", "tta": "flip"},
            "augment": {"hflip": 0.5, "rotation": 10, "translate": 0.05, "zoom": 0.1, "fill": "border"},
            "train": {"batch_size": 32, "monitor": "val_loss", "checkpoint_every_minutes": 5.0},
            "stages": [{
                "name": "finetune", "epochs": epochs, "unfreeze_last": unfreeze_last, "freeze_bn": True,
                "optimizer": {"name": "adamw", "lr": 1.0e-4, "weight_decay": 1.0e-4},
                "schedule": {"name": "cosine"}, "early_stopping": {"patience": 2},
            }],
        },
        origin="ferkit adapt --mode finetune",
    )  # fmt: skip


def finetune_member(
    member: ModelBundle,
    crops: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    run_dir: Path,
    epochs: int,
    unfreeze_last: int,
    seed: int,
) -> ModelBundle:
    """Train ``member`` (a fitted probe) on ``crops``; resumes a run left in ``run_dir``.

    Returns:
        The best checkpoint's bundle (lowest validation loss).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    start = run_dir / "start.pt"
    if not start.is_file():
        atomic_save({"model": member.to_dict()}, start)
    if groups is not None and len(set(groups.tolist())) < round(1 / VAL_SHARE):
        groups = None  # too few people to hold some out: the validation part (early stopping only) mixes them
    ds = split_pool(crops_dataset(crops, labels, member.class_names), [1 - VAL_SHARE, VAL_SHARE],
                    ["train", "val"], seed, groups=groups)  # fmt: skip
    split = ResolvedSplit(
        source="ferkit adapt", layout="crops", method="pool", counts=ds.class_counts(),
        ratios=[1 - VAL_SHARE, VAL_SHARE], names=["train", "val"], seed=seed,
        groups=None if groups is None else len(set(groups.tolist())),
    )  # fmt: skip
    data = TrainData(ds.split("train"), ds.split("val"), "val", split)
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    Trainer(_config(start, epochs, unfreeze_last, seed), run_dir).fit(resume=resume, data=data)
    return read_bundle(run_dir)
