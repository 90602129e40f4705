"""Own photo datasets end to end: any image/input size, one split resolver, cross-dataset evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, TINY_TRAIN
from photo_fixtures import make_photo_pool

from ferkit.errors import FerkitError
from ferkit.models.preprocess import resize_batch
from ferkit.training.config import load_config
from ferkit.training.engine import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("n", [1, 3, 200])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("side", "size"), [(256, 240), (256, 112), (350, 260), (48, 112), (240, 240)])
def test_resize_batch_any_size_channels_and_batch(n, channels, side, size):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, side, side, channels), dtype=np.uint8)
    images[-1] = 200  # a flat image stays flat at any size
    out = resize_batch(images, size, "bicubic")
    assert out.shape == (n, size, size, channels) and out.dtype == np.uint8
    assert (out[-1] == 200).all()
    if n > 1:  # each image is resized on its own: the same result alone as in the batch
        assert np.array_equal(out[0], resize_batch(images[:1], size, "bicubic")[0])


@pytest.mark.parametrize(
    ("sizes", "input_size", "color"),
    [
        ([(256, 256)], 240, True),
        ([(256, 256)], 112, False),
        ([(350, 350)], 260, True),
        ([(350, 350), (256, 256), (300, 200), (97, 131)], 112, True),
    ],
)
def test_train_and_evaluate_on_photos_whose_size_does_not_divide_the_input(
    sizes, input_size, color, tmp_path
):
    from ferkit.evaluation.evaluate import evaluate

    data = make_photo_pool(tmp_path / "photos", sizes, per_class=5, color=color)
    cfg = load_config(None, [*TINY_TRAIN, f"data.path={data}", f"model.input_size={input_size}",
                             "data.split={ratios: [0.6, 0.2, 0.2]}", "stages.0.epochs=1",
                             "train.batch_size=8", "train.eval_batch_size=5"])  # fmt: skip
    Trainer(cfg, tmp_path / "run").fit()
    m = evaluate([tmp_path / "run"], str(data), tmp_path / "eval", split="test", gradcam_per_class=1)
    assert m["n"] == 5 and 0 <= m["accuracy"] <= 1
    saved = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert saved["n"] == 5


# ---------------------------------------------------------------- one split resolver (item 2)


def test_pool_split_is_never_applied_to_pre_split_data(fer_csv):
    from ferkit.data import DataSpec, SplitSpec, load_splits

    pool = SplitSpec(ratios=[0.7, 0.15, 0.15])
    ds, info = load_splits(DataSpec(path=str(fer_csv), split=pool), progress=False)
    official, _ = load_splits(DataSpec(path=str(fer_csv)), progress=False)
    assert np.array_equal(ds.splits, official.splits) and info.method == "official"
    assert "not applied" in info.summary()
    # an explicit re-split divides train+val again and leaves the official test split where it was
    again = SplitSpec(ratios=[0.5, 0.5], names=["train", "val"], resplit=True, seed=1)
    ds, info = load_splits(DataSpec(path=str(fer_csv), split=again), progress=False)
    assert info.method == "resplit" and info.ratios == [0.5, 0.5]
    assert np.array_equal(ds.splits == "test", official.splits == "test")
    with pytest.raises(FerkitError, match="official test split"):
        load_splits(DataSpec(path=str(fer_csv), split=SplitSpec(ratios=[0.6, 0.2, 0.2], resplit=True)), False)
    with pytest.raises(FerkitError, match="official test split is never re-split"):
        load_splits(DataSpec(path=str(fer_csv), split=SplitSpec(ratios=[0.5, 0.5], source="test")), False)


def test_run_saves_its_resolved_split_and_export_uses_it(tmp_path, capsys):
    from ferkit.evaluation.evaluate import evaluate
    from ferkit.export import export_onnx

    data = make_photo_pool(tmp_path / "photos", [(64, 64)], per_class=6)
    split = "data.split={ratios: [0.5, 0.25, 0.25], seed: 3}"
    cfg = load_config(None, [*TINY_TRAIN, f"data.path={data}", split, "stages.0.epochs=1"])
    Trainer(cfg, tmp_path / "run").fit()
    assert "pool 0.5/0.25/0.25 → train/val/test, seed 3" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run/data.json").read_text())["split"]
    assert saved["method"] == "pool" and saved["seed"] == 3
    assert {s: sum(c.values()) for s, c in saved["counts"].items()} == {"train": 15, "val": 10, "test": 5}
    m = evaluate([tmp_path / "run"], str(data), tmp_path / "eval", gradcam_per_class=0)
    assert (m["split"], m["n"]) == ("test", 5)  # the run's own source: its own test split by default
    report = export_onnx(tmp_path / "run", tmp_path / "m.onnx", "int8", data=str(data), split="test")
    assert report.split_size == 5 and set(report.accuracy) == {"torch", "onnx_fp32", "onnx_int8"}


# ---------------------------------------------------------------- subject-independent splits (item 3)


def _subject_pool(root: Path, subjects: int = 12) -> Path:
    """Every subject has one photo per class; the subject id is in the file name (s07_happy.jpg)."""
    import cv2

    from ferkit.data.synthetic import CLASSES, draw_face

    rng = np.random.default_rng(0)
    for cls in CLASSES:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for sub in range(subjects):
            cv2.imwrite(str(root / cls / f"s{sub:02d}_{cls}.jpg"), draw_face(cls, rng, 40))
    return root


@pytest.mark.parametrize("by", ["regex", "csv"])
def test_group_split_keeps_each_subject_in_one_split(tmp_path, by):
    from ferkit.data import DataSpec, SplitSpec, load_splits
    from ferkit.data.split import item_groups

    data = _subject_pool(tmp_path / "pool")
    group_by = r"/(s\d+)_"
    if by == "csv":
        rows = ["path,group"] + [
            f"{p.relative_to(data).as_posix()},{p.name[:3]}" for p in data.rglob("*.jpg")
        ]
        (tmp_path / "groups.csv").write_text("\n".join(rows))
        group_by = str(tmp_path / "groups.csv")
    split = SplitSpec(ratios=[0.5, 0.25, 0.25], group_by=group_by, seed=5)
    ds, info = load_splits(DataSpec(path=str(data), split=split), progress=False)
    subjects = item_groups(ds, r"/(s\d+)_")
    for s in np.unique(subjects):  # every subject in exactly one split
        assert len(set(ds.splits[subjects == s])) == 1, s
    assert info.groups == 12 and info.groups_across_splits == 0 and info.method == "pool"
    counts = {s: sum(c.values()) for s, c in ds.class_counts().items()}
    assert set(counts) == {"train", "val", "test"} and counts["train"] > counts["val"]
    assert all(min(c.values()) > 0 for c in ds.class_counts().values())  # stratified: every class everywhere
    again, _ = load_splits(DataSpec(path=str(data), split=split), progress=False)
    assert np.array_equal(again.splits, ds.splits)  # seeded
    with pytest.raises(FerkitError, match="does not match"):
        load_splits(DataSpec(path=str(data), split=SplitSpec(ratios=[0.5, 0.5], group_by=r"x(\d+)y")), False)


def test_inspect_reports_subjects_shared_between_splits(tmp_path):
    import shutil

    from typer.testing import CliRunner

    from ferkit.cli.main import app

    pool = _subject_pool(tmp_path / "pool", subjects=4)
    for cls_dir in pool.iterdir():
        for p in cls_dir.iterdir():
            split = "test" if p.name.startswith(("s03", "s02")) else "train"
            dest = tmp_path / "split" / split / cls_dir.name
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest / p.name)
    leak = tmp_path / "split/train/happy/s03_happy_again.jpg"  # subject 3 also in train
    shutil.copy(tmp_path / "split/test/happy/s03_happy.jpg", leak)
    res = CliRunner().invoke(app, ["data", "inspect", str(tmp_path / "split"), "--group-by", r"/(s\d+)_",
                                   "--json", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "4, 1 across splits (leakage)" in res.output
    groups = json.loads((tmp_path / "r.json").read_text())["groups"]
    assert groups["examples"] == [{"group": "s03", "splits": ["test", "train"]}]


# ---------------------------------------------------------------- any model on any dataset (item 5)


def test_class_synonyms_map_subset_and_missing_classes():
    from ferkit.data.classes import match_classes, parse_class_map

    model = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    m = match_classes(["Anger", "contempt", "happiness", "normal", "surprised", "joy_face"], model,
                      parse_class_map("joy_face=happy"))  # fmt: skip
    assert m.to_model.tolist() == [0, -1, 3, 4, 6, 3]
    assert m.dropped == ["contempt"] and m.absent == ["disgust", "fear", "sad"]
    assert m.present == [0, 3, 4, 6] and m.renamed["normal"] == "neutral"
    with pytest.raises(FerkitError, match="not old=new"):
        parse_class_map("joy")
    with pytest.raises(FerkitError, match="not one of the model's classes"):
        match_classes(["joy"], model, {"joy": "glee"})


def test_evaluate_run_on_another_dataset_with_other_class_names(tiny_run, tmp_path):
    """tiny_run knows angry/happy/neutral/sad/surprise; the other dataset spells them its own way,
    lacks 'sad' and has 'contempt'."""
    from ferkit.evaluation.evaluate import evaluate

    classes = ("anger", "happiness", "normal", "surprised", "contempt", "Joyful")
    other = make_photo_pool(tmp_path / "other", [(64, 64)], per_class=3, classes=classes)
    m = evaluate([tiny_run], str(other), tmp_path / "e", gradcam_per_class=1, class_map={"joyful": "happy"})
    assert m["split"] == "all" and m["n"] == 15  # a foreign source: all of it, contempt left out
    assert m["labels"] == ["angry", "happy", "neutral", "surprise"]
    assert m["classes"]["dropped"] == ["contempt"] and m["classes"]["left_out_items"] == 3
    assert m["classes"]["absent"] == ["sad"] and len(m["confusion_matrix"]) == 4
    assert len(m["confusion_matrix"][0]) == 5  # predictions stay over all the model's classes
    assert any("contempt" in n for n in m["notes"])
    page = (tmp_path / "e/report.html").read_text()
    assert "contempt" in page and page.count("data:image/png;base64,") >= 6


def test_evaluate_the_shipped_model_with_a_detector_counts_misses(tmp_path):
    """Whole photos through the same detection and crop path as predict; no face = a miss."""
    import shutil

    import cv2

    from ferkit.evaluation.evaluate import evaluate
    from ferkit.inference.recognizer import ASSETS

    root = tmp_path / "photos"
    for cls in ("happy", "sad"):
        (root / cls).mkdir(parents=True)
        shutil.copy(ASSETS / "astronaut.jpg", root / cls / "astronaut.jpg")
        cv2.imwrite(str(root / cls / "wall.png"), np.full((120, 160, 3), 128, np.uint8))
    m = evaluate(["default"], str(root), tmp_path / "e", split="all", detector="haar")
    assert m["n"] == 4 and m["no_face"] == 2 and m["predicted_labels"][-1] == "no face"
    assert m["accuracy"] <= 0.5 and m["tta"] == "flip"
    assert sum(row[-1] for row in m["confusion_matrix"]) == 2
    rows = (tmp_path / "e/predictions.csv").read_text().splitlines()
    assert sum(",no face," in r for r in rows) == 2
    assert "2 of 4 images without a face" in (tmp_path / "e/report.html").read_text()


def test_cli_evaluate_default_on_several_datasets(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from ferkit.cli.main import app

    a = make_photo_pool(tmp_path / "a", [(64, 64)], per_class=2, classes=("happy", "sad"))
    b = make_photo_pool(tmp_path / "b", [(80, 60)], per_class=2, classes=("angry", "surprise"), color=False)
    res = CliRunner().invoke(app, ["evaluate", "default", "--data", str(a), "--data", str(b),
                                   "--split", "all", "--out", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "x/cross_dataset.json").read_text())
    assert [r["n"] for r in rows] == [4, 4] and "accuracy" in res.output
    assert (tmp_path / "x/a/report.html").is_file() and (tmp_path / "x/b/metrics.json").is_file()
    assert "Cross-dataset" in (tmp_path / "x/report.html").read_text()
    res = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--data", str(a), "--split", "test"])
    assert "no split 'test'" in str(res.exception)


# ---------------------------------------------------------------- small ones (item 9)


def _face(box, label="happy"):
    from ferkit.inference.recognizer import FacePrediction

    probs = dict.fromkeys(("angry", "happy", "neutral", "sad", "surprise"), 0.1) | {label: 0.6}
    return FacePrediction(box=box, label=label, score=0.6, probabilities=probs)


@pytest.mark.parametrize(
    ("shape", "boxes"),
    [
        ((300, 300), [(0, 0, 300, 300)]),  # a selfie: the face fills the photo
        ((200, 400), [(10, 20, 180, 170), (205, 20, 185, 170)]),  # two faces side by side
        ((400, 600), [(250, 120, 100, 120)]),  # room beside the face
    ],
)
def test_probability_bars_never_cover_a_face(shape, boxes):
    from ferkit.inference.annotate import annotate

    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    faces = [_face(b) for b in boxes]
    plain, barred = annotate(image, faces, bars=False), annotate(image, faces)
    assert barred.shape[0] >= shape[0] and barred.shape[1] >= shape[1]
    changed = np.zeros(barred.shape[:2], bool)
    changed[: shape[0], : shape[1]] = (plain != barred[: shape[0], : shape[1]]).any(2)
    changed[:, shape[1] :] = True  # a side panel is outside every face by construction
    bars_drawn = changed.sum() - (barred.shape[1] - shape[1]) * barred.shape[0]
    for x, y, w, h in boxes:  # inside each box, below the label strip (the label may get a number)
        assert not changed[y + 18 : y + h - 3, x + 3 : x + w - 3].any()
    assert bars_drawn > 0 or barred.shape[1] > shape[1]  # the bars went somewhere
    same_size = annotate(image, faces, panel=False)  # video frames keep their size
    assert same_size.shape == (*shape, 3)


def test_unknown_set_key_suggests_the_closest_valid_one():
    with pytest.raises(FerkitError, match=r"data\.split\.sed: .*did you mean 'seed'"):
        load_config(None, ["data.split={ratios: [0.5, 0.5], sed: 3}"])
    with pytest.raises(FerkitError, match=r"stages\.0\.optimiser: .*did you mean 'optimizer'"):
        load_config(None, ["stages.0.optimiser.lr=0.1"])


def test_video_without_a_source_says_one_is_needed():
    from typer.testing import CliRunner

    from ferkit.cli.main import app

    res = CliRunner().invoke(app, ["video"])
    assert "give either a video file or --webcam" in str(res.exception)


# ---------------------------------------------------------------- slow: paper 004 end to end on real photos

MUXSPACE = SHARED / "data" / "muxspace-faces.tar.gz"
LITE0 = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
YUNET = SHARED / "models" / "face_detection_yunet_2026may.onnx"
CPU_SIZED = [
    "model.name=tf_efficientnet_lite0",  # B1 has no offline ImageNet weights here; Lite0 does
    f"model.pretrained={LITE0}",
    "model.input_size=112",
    "train.batch_size=32",
    "train.checkpoint_every_minutes=null",
    "stages.0.epochs=3",
    "stages.1.epochs=3",
]


@pytest.mark.slow
@pytest.mark.skipif(not (MUXSPACE.is_file() and LITE0.is_file()), reason="../shared data/weights not present")
def test_paper004_recipe_end_to_end_on_muxspace(tmp_path):
    """`ferkit train --config configs/folders_effb1_paper004.yaml` (CPU-sized) on a real colour photo
    pool (256 px stored, 112 px input), then evaluate, explain and compare, as a user would."""
    import shutil
    import tarfile
    import time

    from typer.testing import CliRunner

    from ferkit.cli.main import app

    cli = CliRunner()
    run = tmp_path / "run"
    started = time.monotonic()
    args = ["train", "--config", str(CONFIGS / "folders_effb1_paper004.yaml"), "--data", str(MUXSPACE),
            "--out", str(run)] + [a for s in CPU_SIZED for a in ("--set", s)]  # fmt: skip
    res = cli.invoke(app, args)
    assert res.exit_code == 0, res.output
    minutes = (time.monotonic() - started) / 60
    split = json.loads((run / "data.json").read_text())["split"]
    n_test = sum(split["counts"]["test"].values())
    assert split["method"] == "pool" and 300 < n_test < 340  # 15 % of 2,115
    res = cli.invoke(app, ["evaluate", str(run), "--data", str(MUXSPACE), "--out", str(tmp_path / "eval")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert m["split"] == "test" and m["n"] == n_test  # the run's own split of its own source
    print(f"\npaper-004 CPU-sized on muxspace: {minutes:.1f} min training; test accuracy "
          f"{m['accuracy']:.4f}, macro-F1 {m['macro']['f1']:.4f} (n={m['n']})")  # fmt: skip
    assert m["accuracy"] > 0.3  # chance is 1/7 (0.24 when always answering the largest class)
    with tarfile.open(MUXSPACE) as tf:
        photos = [n for n in tf.getnames() if n.endswith(".jpg")][:3]
        tf.extractall(tmp_path / "photos", members=[tf.getmember(n) for n in photos], filter="data")
    detector = (
        ["--detector", "yunet", "--yunet-model", str(YUNET)] if YUNET.is_file() else ["--detector", "haar"]
    )
    res = cli.invoke(app, ["explain", str(run), *[str(tmp_path / "photos" / p) for p in photos],
                           "--out", str(tmp_path / "x"), *detector])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "x/explain.json").read_text())) == 3
    shutil.copytree(run, tmp_path / "again")
    res = cli.invoke(app, ["compare", str(run), str(tmp_path / "again"), "--data", str(MUXSPACE),
                           "--out", str(tmp_path / "cmp")])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "cmp/compare.json").read_text())
    assert rows[0]["accuracy"] == rows[1]["accuracy"] == pytest.approx(m["accuracy"])
