"""`ferkit adapt`, embeddings, torch weights rebuilt from ONNX, and training from an expression start."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import TINY_TRAIN
from fastapi.testclient import TestClient
from photo_fixtures import photo
from typer.testing import CliRunner

from ferkit.adapt.folds import check_groups_apart, kfold
from ferkit.adapt.run import Adapter, AdaptOptions, adapt, prepare_dataset
from ferkit.cli.main import app
from ferkit.data import load_dataset
from ferkit.data.synthetic import make_synthetic_folders
from ferkit.errors import FerkitError
from ferkit.export.onnx import export_onnx, sample_images
from ferkit.inference.backends import OnnxBackend, TorchBackend
from ferkit.inference.recognizer import Recognizer, shipped_model_file
from ferkit.models.factory import load_bundle, read_bundle
from ferkit.models.onnx_weights import bundle_from_onnx, calibrate_folded_batchnorm
from ferkit.serve import Limits, Service, create_app
from ferkit.training.config import load_config
from ferkit.training.engine import Trainer

PERSON = r"(p\d+)_\d+\.jpg$"
CLASSES = ("angry", "happy", "neutral", "sad", "surprise")


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    """``<class>/p<person>_<n>.jpg``: 5 classes, 8 people, 2 photos of each person per class."""
    root = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(0)
    for cls in CLASSES:
        (root / cls).mkdir()
        for person in range(8):
            for n in range(2):
                cv2.imwrite(str(root / cls / f"p{person}_{n}.jpg"), photo(cls, rng, 72, 64, color=True))
    return root


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


def opts(**kw) -> AdaptOptions:
    return AdaptOptions(**{"model": "fast", "detector": "none", "folds": 3, "group_by": PERSON, **kw})


def test_head_mode_validates_by_person_and_writes_an_ordinary_model(people, tmp_path):
    out = tmp_path / "adapted"
    res = run_cli("adapt", str(people), "--out", str(out), "--model", "fast", "--detector", "none",
                  "--folds", "3", "--group-by", PERSON)  # fmt: skip
    assert res.exit_code == 0, res.output
    cv = json.loads((out / "cv.json").read_text())
    assert cv["folds"] == 3 and cv["mode"] == "head" and cv["n"] == 80 and cv["groups"] == 8
    assert {"accuracy_mean", "accuracy_sd", "macro_f1_mean", "zero_shot_accuracy_mean"} <= set(cv)
    assert np.asarray(cv["confusion"]).sum() == 80 and len(cv["confusion"]) == len(CLASSES)
    assert 0.0 <= cv["accuracy_mean"] <= 1.0 and "accuracy" in res.output
    # the run directory is a model every entry point takes; its probabilities are the probe's
    rec = Recognizer.load(out, detector="none")
    assert rec.class_names == list(CLASSES) and rec.preprocessing.input_size == 64
    ds = prepare_dataset(people, opts())
    adapter = Adapter(opts(), ds)
    rec.tta = "flip"
    probs = rec.probabilities(adapter.faces.crops)
    heads, _ = adapter.fit(np.arange(len(ds)))
    assert np.abs(probs - adapter.probabilities(heads, np.arange(len(ds)))).max() < 1e-4
    shown = run_cli("evaluate", str(out))
    assert shown.exit_code == 0 and "3-fold" in shown.output and "zero-shot" in shown.output
    res = run_cli("adapt", str(people), "--out", str(out), "--model", "fast", "--detector", "none")
    assert res.exit_code != 0 and "already holds an adapted model" in str(res.exception)


def test_adapted_model_predicts_serves_and_exports(people, tmp_path):
    out = tmp_path / "adapted"
    adapt(people, out, opts(folds=None, classes=["happy", "sad", "surprise"]))
    image = next((people / "happy").iterdir())
    res = run_cli(
        "predict", str(image), "--model", str(out), "--detector", "none", "--json", str(tmp_path / "p.json")
    )
    assert res.exit_code == 0, res.output
    (pred,) = json.loads((tmp_path / "p.json").read_text())
    assert set(pred["faces"][0]["probabilities"]) == {"happy", "sad", "surprise"}
    rec = Recognizer.load(out, detector="none")
    with TestClient(create_app(Service(rec, Limits(), str(out), "none"))) as client:
        answer = client.post("/v1/predict", files=[("file", ("a.jpg", image.read_bytes()))])
    assert answer.status_code == 200, answer.text
    report = export_onnx(out, tmp_path / "adapted.onnx", samples=8)
    assert report.max_diff_fp32 < 1e-4
    onnx_backend = OnnxBackend.from_file(tmp_path / "adapted.onnx")
    _, emb = onnx_backend.outputs(sample_images(onnx_backend.preprocessing, 4))
    assert emb.shape == (4, 1280) and onnx_backend.class_names == ["happy", "sad", "surprise"]


def test_subset_superset_and_renamed_classes(people, tmp_path):
    ds = load_dataset(people)
    sub = prepare_dataset(ds, opts(classes=["happy", "sad"]))
    assert sub.class_names == ("happy", "sad") and len(sub) == 32
    renamed = prepare_dataset(ds, opts(class_map="happy=joy,surprise=joy,neutral=calm"))
    assert renamed.class_names == ("angry", "joy", "calm", "sad") and (renamed.labels == 1).sum() == 32
    mapfile = tmp_path / "map.txt"
    mapfile.write_text("# dataset = mine\nangry=contempt\n")
    superset = prepare_dataset(ds, opts(class_map=str(mapfile)))
    assert "contempt" in superset.class_names  # a class the base model does not know
    v = adapt(superset, tmp_path / "sup", opts())
    assert v.class_names == list(superset.class_names)
    assert Recognizer.load(tmp_path / "sup", detector="none").class_names == list(superset.class_names)


def test_grouped_folds_keep_people_apart(people):
    ds = load_dataset(people)
    groups = np.array([Path(s).name.split("_")[0] for s in ds.sources])
    folds = kfold(ds.labels, 4, groups, seed=0)
    assert len(folds) == 4 and sorted(np.concatenate([t for _, t in folds]).tolist()) == list(range(len(ds)))
    check_groups_apart(folds, groups)
    leaky = [(np.arange(0, 60), np.arange(50, 80))]
    with pytest.raises(FerkitError, match="in training and test"):
        check_groups_apart(leaky, groups)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-by", r"(q\d+)_"], "does not match"),
        (["--group-by", "([unclosed"], "neither a CSV file nor a regex"),
        (["--classes", "happy,joyful"], "unknown class 'joyful'"),
        (["--class-map", "smiling=happy"], "unknown class 'smiling'"),
        (["--mode", "probe"], "--mode must be head or finetune"),
        (["--folds", "1"], "--folds must be at least 2"),
    ],
)
def test_bad_options_are_one_clear_error(people, tmp_path, args, message):
    res = run_cli("adapt", str(people), "--out", str(tmp_path / "x"), "--model", "fast", "--detector", "none",
                  "--folds", "3", *args)  # fmt: skip
    assert res.exit_code != 0 and message in str(res.exception), (res.output, res.exception)
    assert isinstance(res.exception, FerkitError)


def test_finetune_mode_trains_from_the_probe_and_resumes_nothing_twice(people, tmp_path):
    out = tmp_path / "ft"
    v = adapt(people, out, opts(mode="finetune", folds=2, epochs=1))
    assert v.mode == "finetune" and len(v.per_fold) == 2
    for fold in ("fold-1", "fold-2", "final"):
        assert (out / "runs" / fold / "checkpoints" / "best.pt").is_file()
        assert (
            "the whole model"
            in json.loads((out / "runs" / fold / "model.json").read_text())["start"]["loaded"]
        )
    assert Recognizer.load(out, detector="none").class_names == list(CLASSES)


def test_shipped_default_rebuilds_exactly_in_torch():
    path = shipped_model_file("default")
    onnx_backend = OnnxBackend.from_file(path)
    model, names, pp = load_bundle(bundle_from_onnx(path))
    x = sample_images(pp, 16)
    p_onnx, e_onnx = onnx_backend.outputs(x)
    p_torch, e_torch = TorchBackend(model, names, pp).outputs(x)
    assert e_onnx.shape == (16, 2560) and np.abs(p_onnx - p_torch).max() < 1e-5
    assert np.abs(e_onnx - e_torch).max() < 1e-3
    # BatchNorm statistics from data keep the eval-mode function
    import torch

    before = model(torch.from_numpy(x)).detach()
    calibrate_folded_batchnorm(model, [torch.from_numpy(x)])
    assert torch.allclose(model(torch.from_numpy(x)), before, atol=1e-4)


def test_recognizer_embeddings_average_the_views():
    rec = Recognizer.load("fast", detector="none")
    crops = [np.random.default_rng(i).integers(0, 256, (50 + i, 60, 3), dtype=np.uint8) for i in range(3)]
    rec.tta = "flip"
    views = rec.outputs(crops)
    assert len(views) == 2 and np.allclose(rec.embeddings(crops), (views[0][1] + views[1][1]) / 2)
    assert np.allclose(sum(p for p, _ in views) / 2, rec.probabilities(crops), atol=1e-6)
    assert rec.embeddings([]).shape == (0, 1280)


def test_training_starts_from_an_expression_model(tmp_path):
    data = make_synthetic_folders(tmp_path / "faces", per_class=8, test_per_class=2)
    sets = [s for s in TINY_TRAIN if not s.startswith(("model.name", "model.pretrained", "model.input_size"))]
    cfg = load_config(None, [*sets, f"data.path={data}", "model.pretrained=ferkit:fast", "model.head=dropout",
                             "stages.0.epochs=1", "stages.0.unfreeze_last=5"])  # fmt: skip
    Trainer(cfg, tmp_path / "run").fit()
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["name"] == "tf_efficientnet_lite0" and saved["model"]["input_size"] == 64
    assert saved["data"]["color"] == "gray"
    start = json.loads((tmp_path / "run" / "model.json").read_text())["start"]
    assert "head rows of 5 shared classes" in start["loaded"]
    assert read_bundle(tmp_path / "run").preprocessing.input_size == 64
    with pytest.raises(FerkitError, match="has 1 members, not member 3"):
        Trainer(
            load_config(None, [*sets, f"data.path={data}", "model.pretrained=ferkit:fast#3"]), tmp_path / "r2"
        ).fit()
