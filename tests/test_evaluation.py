"""Evaluation: metrics against scikit-learn, every artefact and plot, TTA, ensembles, compare, explain."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from ferkit.data import load_dataset
from ferkit.evaluation.compare import compare
from ferkit.evaluation.evaluate import evaluate, load_model, stored_probabilities
from ferkit.evaluation.explain import explain
from ferkit.evaluation.metrics import expected_calibration_error
from ferkit.models.predict import predict_proba

PLOTS = ["confusion_counts.png", "confusion_normalized.png", "per_class_f1.png", "reliability.png",
         "learning_curves.png", "mistakes.png", "gradcam.png"]  # fmt: skip


def assert_real_png(path: Path, min_side: int = 200) -> None:
    """Exists, is a PNG of a sensible size, and is not a blank canvas."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert min(im.size) >= min_side, (path.name, im.size)
        arr = np.asarray(im.convert("L"), dtype=np.float32)
    assert arr.std() > 10, f"{path.name} looks blank"


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    data = tiny_run.parent / "faces"
    return evaluate([tiny_run], str(data), out, split="test", tta="none", gradcam_per_class=2), out, data


def test_every_artefact_is_written(evaluated):
    _, out, _ = evaluated
    for name in [
        "metrics.json",
        "classification_report.txt",
        "predictions.csv",
        "report.html",
        "report.md",
        *PLOTS,
    ]:
        assert (out / name).is_file(), name
    for name in PLOTS:
        assert_real_png(out / name)
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(PLOTS)  # self-contained: every plot embedded
    assert "Run config" in page and "Data summary" in page
    assert "macro-F1" in (out / "report.md").read_text()


def test_metrics_match_scikit_learn(evaluated):
    m, out, _ = evaluated
    with open(out / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    names = m["labels"]
    y = np.array([names.index(r["true"]) for r in rows])
    p = np.array([names.index(r["predicted"]) for r in rows])
    probs = np.array([[float(r[c]) for c in names] for r in rows])
    assert m["n"] == len(rows) == 40
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    for avg in ("macro", "weighted"):
        pr, rc, f1, _ = skm.precision_recall_fscore_support(y, p, average=avg, zero_division=0)
        assert m[avg] == pytest.approx({"precision": pr, "recall": rc, "f1": f1})
    assert m["confusion_matrix"] == skm.confusion_matrix(y, p, labels=range(len(names))).tolist()
    per_f1 = skm.f1_score(y, p, average=None, labels=range(len(names)), zero_division=0)
    assert [m["per_class"][c]["f1"] for c in names] == pytest.approx(per_f1.tolist())
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert m["ece"] == pytest.approx(expected_calibration_error(probs, y), abs=1e-4)
    report = (out / "classification_report.txt").read_text()
    assert report.split() == skm.classification_report(y, p, target_names=names, digits=4,
                                                       zero_division=0).split()  # fmt: skip


def test_expected_calibration_error_known_values():
    labels = np.array([0, 1, 0, 1])
    perfect = np.eye(2)[labels]
    assert expected_calibration_error(perfect, labels) == 0.0
    always_wrong = np.eye(2)[1 - labels]
    assert expected_calibration_error(always_wrong, labels) == pytest.approx(1.0)
    half = np.full((4, 2), 0.5)  # confidence 0.5, accuracy 0.5 (argmax picks class 0)
    assert expected_calibration_error(half, labels) == pytest.approx(0.0)


def test_tta_changes_probabilities_and_keeps_shapes(tiny_run):
    run = load_model([tiny_run])
    run.model = run.torch_model
    ds = load_dataset(tiny_run.parent / "faces").split("test")
    base = predict_proba(run.model, ds.images, run.pp, tta="none")
    for tta in ("flip", "tencrop"):
        probs = predict_proba(run.model, ds.images, run.pp, tta=tta)
        assert probs.shape == base.shape == (len(ds), 5)
        assert np.allclose(probs.sum(1), 1, atol=1e-5)
        assert np.abs(probs - base).max() > 1e-4, tta
    flip = predict_proba(run.model, ds.images, run.pp, tta="flip")
    mirrored = predict_proba(run.model, ds.images[:, :, ::-1].copy(), run.pp, tta="none")
    np.testing.assert_allclose(flip, (base + mirrored) / 2, atol=1e-5)


def test_ensemble_is_the_mean_of_its_members(tiny_run, tmp_path):
    from conftest import TINY_TRAIN

    from ferkit.training.config import load_config
    from ferkit.training.engine import Trainer

    data = tiny_run.parent / "faces"
    other = tmp_path / "other"
    Trainer(load_config(None, [*TINY_TRAIN, f"data.path={data}", "seed=7", "stages.0.epochs=1"]), other).fit()
    ds = load_dataset(data).split("test")
    mean = stored_probabilities(load_model([tiny_run, other]), ds, "none")
    members = [stored_probabilities(load_model([r]), ds, "none") for r in (tiny_run, other)]
    np.testing.assert_allclose(mean, sum(members) / 2, atol=1e-6)
    m = evaluate([tiny_run, other], str(data), tmp_path / "ens", split="test", gradcam_per_class=0)
    assert m["models"] == [str(tiny_run), str(other)]
    assert m["accuracy"] == pytest.approx(float((mean.argmax(1) == ds.labels).mean()))


def test_compare_table_and_charts(tiny_run, tmp_path):
    second = tmp_path / "copy"
    shutil.copytree(tiny_run, second)
    rows = compare([tiny_run, second], str(tiny_run.parent / "faces"), tmp_path / "cmp", split="test")
    assert [r["run"] for r in rows] == [tiny_run.name, "copy"]
    assert rows[0]["accuracy"] == rows[1]["accuracy"]
    for r in rows:
        assert (
            r["params_m"] > 0 and r["gflops"] > 0 and r["ms_per_image_b1"] > 0 and r["ms_per_image_b64"] > 0
        )
    saved = json.loads((tmp_path / "cmp/compare.json").read_text())
    assert saved == rows
    for name in (
        "compare_accuracy.png",
        "compare_macro_f1.png",
        "compare_confusion.png",
        "compare_learning_curves.png",
    ):
        assert_real_png(tmp_path / "cmp" / name)
    assert (tmp_path / "cmp/compare.html").read_text().count("data:image/png;base64,") == 4


def test_explain_single_images(tiny_run, tmp_path):
    faces = sorted((tiny_run.parent / "faces/test/happy").glob("*.png"))[:2]
    results = explain(tiny_run, faces, tmp_path / "x", detector="none")
    assert [r.image for r in results] == [str(f) for f in faces]
    for r in results:
        assert sum(r.probabilities.values()) == pytest.approx(1, abs=1e-4)
        assert_real_png(Path(r.figure))
    saved = json.loads((tmp_path / "x/explain.json").read_text())
    assert [s["label"] for s in saved] == [r.label for r in results]


def test_explain_photos_crops_the_face_as_predict_does(tiny_run, tmp_path):
    """A wide photo is not squashed: its face crop, hence its result, equals the one of the photo
    it was padded from; a photo without a face is reported and the others still explained."""
    import cv2

    from ferkit.evaluation.explain import face_crop
    from ferkit.inference.recognizer import ASSETS, Recognizer, read_image

    photo = read_image(ASSETS / "astronaut.jpg")
    wide = np.concatenate([np.zeros((photo.shape[0], 300, 3), np.uint8), photo], axis=1)
    cv2.imwrite(str(tmp_path / "wide.png"), wide[..., ::-1])
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((100, 300, 3), 90, np.uint8))
    results = explain(tiny_run, [ASSETS / "astronaut.jpg", tmp_path / "wide.png", tmp_path / "wall.png"],
                      tmp_path / "x", detector="haar")  # fmt: skip
    photo_r, wide_r, wall_r = results
    assert wall_r.error and "no face found" in wall_r.error and wall_r.figure is None
    shift = np.subtract(wide_r.box, photo_r.box)
    assert abs(shift[0] - 300) <= 3 and np.abs(shift[1:]).max() <= 3  # the same face, found again
    assert wide_r.probabilities == pytest.approx(photo_r.probabilities, abs=0.05)
    crop, _ = face_crop(Recognizer.load(tiny_run, "haar"), tmp_path / "wide.png")
    assert crop.shape[0] == crop.shape[1] < photo.shape[0]  # a square face crop, not the stretched photo
    assert_real_png(Path(wide_r.figure))


def test_cli_evaluate_and_bad_input(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from ferkit.cli.main import app

    data = str(tiny_run.parent / "faces")
    res = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--data", data, "--tta", "flip",
                                   "--out", str(tmp_path / "e"), "--gradcam", "1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and json.loads((tmp_path / "e/metrics.json").read_text())["tta"] == "flip"
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--data", data])
    assert "no checkpoint here" in str(res.exception)
    res = CliRunner().invoke(app, ["evaluate", str(tiny_run), "--data", data, "--tta", "mirror"])
    assert "--tta must be" in str(res.exception)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian package chromium not installed")
def test_report_renders_in_headless_chromium(evaluated, tmp_path):
    _, out, _ = evaluated
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--window-size=1200,2400", f"--screenshot={shot}", (out / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert_real_png(shot)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian package chromium not installed")
def test_screenshot_script_captures_the_whole_page(evaluated, tmp_path):
    import os
    import sys

    _, out, _ = evaluated
    script = Path(__file__).resolve().parents[1] / "scripts/screenshot_report.sh"
    shot = tmp_path / "whole.png"
    env = os.environ | {"PYTHON": sys.executable}
    subprocess.run([str(script), str(out / "report.html"), str(shot)], check=True, env=env, timeout=180)
    with Image.open(shot) as im:
        width, height = im.size
        bottom = np.asarray(im.convert("L"))[-60:]
    assert width == 1100 and 3000 < height < 16000  # taller than any window-sized capture used before
    assert bottom.min() < 200  # ends on page content (the run config text), not on empty space
