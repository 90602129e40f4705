"""Slow checks on the real datasets in ../shared (run with `make test-slow` / `pytest -m slow`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED
from typer.testing import CliRunner

from ferkit.cli.main import app
from ferkit.data import load_dataset, split_pool

FER = SHARED / "data" / "fer2013-dev.tar.gz"
MUX = SHARED / "data" / "muxspace-faces.tar.gz"
pytestmark = pytest.mark.slow

FER_COUNTS = {
    "train": {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830,
              "surprise": 3171},
    "test": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "neutral": 607, "sad": 653,
             "surprise": 415},
}  # fmt: skip


@pytest.mark.skipif(not FER.is_file(), reason="FER2013 dev archive not present")
def test_fer2013_archive_counts_and_duplicates(tmp_path):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["data", "inspect", str(FER), "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["splits"] == FER_COUNTS
    assert report["total"] == 28709 + 3589
    assert report["corrupt"] == []
    dup = report["duplicates"]
    assert (dup["groups"], dup["files"], dup["cross_split_groups"], dup["conflicting_label_groups"]) == (
        1273, 2805, 270, 47,
    )  # fmt: skip
    assert report["image_sizes"] == {"48x48": 32298} and report["image_modes"] == {"L": 32298}


@pytest.mark.skipif(not MUX.is_file(), reason="muxspace archive not present")
def test_muxspace_pool_colour_and_stratified_split():
    ds = load_dataset(MUX)
    assert len(ds) == 2115 and ds.split_names() == ["all"] and ds.channels == 3
    split = split_pool(ds, [0.7, 0.15, 0.15], seed=42)
    counts = split.class_counts()
    fear = [counts[s]["fear"] for s in ("train", "val", "test")]
    assert sum(fear) == 21 and min(fear) >= 3
    for cls in ds.class_names:
        total = sum(counts[s][cls] for s in counts)
        assert abs(counts["train"][cls] - 0.7 * total) <= 1
    assert np.array_equal(split.splits, split_pool(ds, [0.7, 0.15, 0.15], seed=42).splits)
