"""Duplicates, leakage, conflicting labels, splits, class weights and layout conversion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ferkit.cli.main import app
from ferkit.data import (
    analyse,
    balanced_class_weights,
    dataset_report,
    drop_from_training,
    load_dataset,
    split_pool,
    stratified_subset,
)
from ferkit.data.export import export_csv, export_folders
from ferkit.data.split import stratified_assign
from ferkit.errors import FerkitError


def test_exact_duplicates_leakage_and_conflicts(messy_tree):
    ds = load_dataset(messy_tree, image_size=32)
    report = analyse(ds, near=None)
    assert len(report.exact) == 1
    group = report.exact[0]
    assert sorted(group.sources) == [
        "test/happy/dup_of_plain.bmp",
        "test/sad/dup_conflicting.png",
        "train/happy/plain.bmp",
    ]
    assert group.cross_split and group.conflicting
    summary = report.summary(report.exact)
    assert summary == {"groups": 1, "files": 3, "cross_split_groups": 1, "conflicting_label_groups": 1}


def test_drop_leaked_only_touches_training(messy_tree):
    ds = load_dataset(messy_tree, image_size=32)
    cleaned, dropped = drop_from_training(ds, analyse(ds, None).exact)
    assert dropped == 1
    assert "train/happy/plain.bmp" not in cleaned.sources.tolist()
    assert (cleaned.splits == "test").sum() == (ds.splits == "test").sum()


def test_near_duplicates_find_reencoded_copies(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (64, 64), dtype=np.uint8), (9, 9), 3)
    for cls in ("a", "b"):
        (tmp_path / "pool" / cls).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "pool/a/orig.png"), base)
    cv2.imwrite(str(tmp_path / "pool/b/copy.jpg"), base, [cv2.IMWRITE_JPEG_QUALITY, 70])
    other = cv2.GaussianBlur(rng.integers(0, 256, (64, 64), dtype=np.uint8), (9, 9), 3)
    cv2.imwrite(str(tmp_path / "pool/a/other.png"), other)
    ds = load_dataset(tmp_path / "pool")
    report = analyse(ds)
    assert report.exact == []
    assert len(report.near) == 1
    assert sorted(report.near[0].sources) == ["a/orig.png", "b/copy.jpg"]
    assert report.near[0].conflicting


def test_near_duplicates_reject_the_same_face_with_another_expression(tmp_path):
    """Same framing, other expression: close perceptual hashes, but not a duplicate; a slightly
    cropped, brightened, re-encoded copy is one. Contact sheets show each group."""
    import cv2

    from ferkit.data.gallery import write_contact_sheets
    from ferkit.data.integrity import NearDuplicateRule, candidate_pairs, perceptual_hashes
    from ferkit.data.synthetic import draw_face

    faces = {cls: draw_face(cls, np.random.default_rng(7), 160) for cls in ("happy", "sad", "surprise")}
    for cls, img in faces.items():
        (tmp_path / "pool" / cls).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / f"pool/{cls}/{cls}.png"), img)
    copy = cv2.resize(faces["happy"][3:-2, 2:-4], (150, 150), interpolation=cv2.INTER_AREA)
    copy = np.clip(copy.astype(np.float32) * 1.06, 0, 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "pool/sad/happy_copy.jpg"), copy, [cv2.IMWRITE_JPEG_QUALITY, 70])
    ds = load_dataset(tmp_path / "pool")
    rule = NearDuplicateRule()
    close = candidate_pairs(perceptual_hashes(ds), rule.hash_distance)
    names = ds.sources.tolist()
    assert len(close) >= 2  # the hash alone links the other expressions too
    report = analyse(ds, rule)
    assert [sorted(g.sources) for g in report.near] == [["happy/happy.png", "sad/happy_copy.jpg"]]
    assert len({names[i] for pair in close for i in pair}) >= 3
    sheets = write_contact_sheets(ds, report.near, tmp_path / "gallery", "near")
    assert [p.name for p in sheets] == ["near_0001.png"]
    assert cv2.imread(str(sheets[0])).shape[1] >= 2 * 150


def test_report_has_the_documented_keys(messy_tree):
    ds = load_dataset(messy_tree, image_size=32)
    rep = dataset_report(ds, analyse(ds), weight_clip=4.0)
    assert rep["splits"]["train"]["happy"] == 5  # heic, cmyk, 16-bit, bmp, full (truncated skipped)
    assert rep["total"] == len(ds)
    assert {c["path"] for c in rep["corrupt"]} == {
        "train/happy/truncated.jpg",
        "train/sad/empty.jpg",
        "test/sad/notes.jpg",
    }
    assert set(rep["duplicates"]) >= {"groups", "files", "cross_split_groups", "conflicting_label_groups"}
    assert max(rep["class_weights"].values()) <= 4.0
    assert rep["image_modes"]["RGB"] >= 1


def test_balanced_weights_match_sklearn_and_clip():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 50 + [1] * 5 + [2] * 20)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(balanced_class_weights(y, 3), expected, rtol=1e-5)
    assert balanced_class_weights(y, 3, clip=4.0)[1] == 4.0
    assert balanced_class_weights(y, 4)[3] == 0.0


def test_stratified_assign_ratios_seed_and_tiny_classes():
    labels = np.array([0] * 100 + [1] * 21 + [2] * 3)
    parts = stratified_assign(labels, [0.7, 0.15, 0.15], seed=1)
    assert np.bincount(parts[labels == 0]).tolist() == [70, 15, 15]
    assert np.bincount(parts[labels == 1], minlength=3).sum() == 21
    assert set(parts[labels == 2]) == {0, 1, 2}  # a 3-image class still reaches every part
    np.testing.assert_array_equal(parts, stratified_assign(labels, [0.7, 0.15, 0.15], seed=1))
    assert not np.array_equal(parts, stratified_assign(labels, [0.7, 0.15, 0.15], seed=2))
    with pytest.raises(FerkitError, match="sum to 1"):
        stratified_assign(labels, [0.5, 0.2], seed=0)


def test_split_pool_keeps_other_splits(fer_csv):
    ds = load_dataset(fer_csv)
    with pytest.raises(FerkitError, match="already exist"):
        split_pool(ds, [0.5, 0.5], names=["train", "val"], source_split="train")
    re = split_pool(ds, [0.5, 0.5], names=["fit", "holdout"], source_split="train", seed=3)
    assert (re.splits == "test").sum() == (ds.splits == "test").sum()
    assert (re.splits == "fit").sum() + (re.splits == "holdout").sum() == (ds.splits == "train").sum()


def test_stratified_subset_keeps_proportions(synthetic_tree):
    ds = load_dataset(synthetic_tree).split("train")
    sub = stratified_subset(ds, 40, seed=0)
    assert len(sub) == 40
    assert np.bincount(sub.labels).tolist() == [8] * 5


def test_csv_folder_round_trip(fer_csv, tmp_path):
    ds = load_dataset(fer_csv)
    export_folders(ds, tmp_path / "folders")
    assert (tmp_path / "folders/val/happy").is_dir()
    back = load_dataset(tmp_path / "folders")
    assert len(back) == len(ds)
    export_csv(back, tmp_path / "again.csv")
    again = load_dataset(tmp_path / "again.csv")

    def key(d):
        names = [d.class_names[i] for i in d.labels]
        return sorted(zip(d.digests.tolist(), d.splits.tolist(), names, strict=True))

    assert key(again) == key(ds)
    with pytest.raises(FileExistsError):
        export_folders(ds, tmp_path / "folders")


def test_export_csv_refuses_unknown_classes(tmp_path):
    from ferkit.data.synthetic import make_synthetic_folders

    root = make_synthetic_folders(tmp_path / "s", per_class=2, test_per_class=0)
    (root / "train" / "happy").rename(root / "train" / "elated")
    with pytest.raises(FerkitError, match="'elated' has no FER2013 label id"):
        export_csv(load_dataset(root), tmp_path / "x.csv")


def test_cli_inspect_json_and_errors(messy_tree, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["data", "inspect", str(messy_tree), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "exact duplicates: 1 groups" in res.output
    assert "truncated.jpg" in res.output
    rep = json.loads(out.read_text())
    assert rep["duplicates"]["cross_split_groups"] == 1
    assert len(rep["corrupt"]) == 3


def test_cli_main_turns_errors_into_messages(tmp_path):
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "ferkit.cli.main", "data", "inspect", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "error:" in res.stderr and "no such file" in res.stderr
    assert "Traceback" not in res.stderr
