"""The models shipped in the package: `default` and `fast` resolve in every entry point, offline."""

from __future__ import annotations

import json
from importlib import resources

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ferkit.cli.main import app
from ferkit.data.synthetic import make_synthetic_folders
from ferkit.errors import FerkitError
from ferkit.inference import Recognizer
from ferkit.inference.recognizer import SHIPPED_TTA, read_image

PHOTO = resources.files("ferkit") / "assets" / "astronaut.jpg"


@pytest.mark.parametrize("name", sorted(SHIPPED_TTA))
def test_shipped_model_loads_with_its_own_tta_and_preprocessing(name):
    rec = Recognizer.default(name, detector="none")
    assert type(rec.backend).__name__ == "OnnxBackend" and rec.tta == SHIPPED_TTA[name]
    assert Recognizer.default(name, detector="none", tta="flip").tta == "flip"
    same = Recognizer.load(name, detector="none")
    assert same.preprocessing == rec.preprocessing and same.class_names == rec.class_names
    probs = rec.probabilities([np.full((48, 48), 128, np.uint8), np.zeros((90, 70, 3), np.uint8)])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)


def test_fast_and_default_are_different_models():
    fast, default = Recognizer.default("fast", detector="none"), Recognizer.default(detector="none")
    assert fast.preprocessing.input_size < default.preprocessing.input_size
    with pytest.raises(FerkitError, match="unknown shipped model 'turbo'"):
        Recognizer.default("turbo")


@pytest.mark.parametrize("name", sorted(SHIPPED_TTA))
def test_shipped_names_work_in_predict_demo_evaluate_and_video(name, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(PHOTO), "--model", name, "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    faces = json.loads((tmp_path / "p.json").read_text())[0]["faces"]
    assert len(faces) == 1 and faces[0]["label"] in Recognizer.default(name, detector="none").class_names
    res = runner.invoke(app, ["demo", "--model", name, "--out", str(tmp_path / "demo")])
    assert res.exit_code == 0 and f"shipped {name!r} model" in res.output, res.output
    data = make_synthetic_folders(tmp_path / "faces", per_class=2, test_per_class=1)
    res = runner.invoke(app, ["evaluate", name, "--data", str(data), "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    images = [p for p in data.rglob("*") if p.suffix in (".png", ".jpg")]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] == len(images)
    clip = tmp_path / "clip.mp4"
    frame = cv2.cvtColor(read_image(PHOTO), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5, (frame.shape[1], frame.shape[0]))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    res = runner.invoke(app, ["video", str(clip), "--model", name, "--csv", str(tmp_path / "v.csv")])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "v.csv").read_text().splitlines()) == 4  # header + one face in 3 frames
