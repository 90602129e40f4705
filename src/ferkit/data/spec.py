"""The data part of a recipe as data: which source, how it is stored, and how it is split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ferkit.errors import FerkitError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitSpec(Strict):
    """How to split: a pool by ratios (stratified, seeded), or one named split (e.g. 87.5/12.5 of train).

    A source with its own splits keeps them; ``resplit`` re-splits its non-test splits (the official
    test split is never moved). ``group_by`` keeps each group (e.g. a person) inside one split.
    """

    ratios: list[float] = Field(min_length=2, max_length=3)
    names: list[str] = ["train", "val", "test"]
    source: str | None = Field(None, description="split to divide; None = a pool (all items)")
    seed: int = 42
    resplit: bool = Field(False, description="re-split a pre-split source's train/val (never its test)")
    group_by: str | None = Field(
        None, description="regex over the relative path (group 1, else the match) or a CSV of path,group"
    )


class DataSpec(Strict):
    path: str | None = Field(None, description="dataset source (usually given by --data)")
    image_size: int | None = Field(None, description="stored image side; None = auto")
    color: Literal["auto", "gray", "rgb"] = "auto"
    split: SplitSpec | None = None
    train_split: str = "train"
    val_split: str = Field("auto", description="'auto' = val if present, else test")
    subset: int | None = Field(None, gt=0, description="stratified subset of the training split")
    drop_leaked: bool = False
    drop_conflicting: bool = False
    on_device: Literal["auto", "always", "never"] = "auto"


def run_data_spec(run: str | os.PathLike) -> DataSpec | None:
    """The data section of a run directory's ``config.yaml``; None for checkpoints and ONNX files."""
    path = Path(run) / "config.yaml"
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return DataSpec.model_validate(raw.get("data") or {})
    except (OSError, yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise FerkitError(f"{path}: cannot read its data section: {exc}") from None
