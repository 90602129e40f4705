"""The light install and safe model files: what inference imports, what the training extra's commands
say without it, and model files that cannot run code (while run directories written before load)."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from batch_fixtures import ASTRONAUT
from test_bad_inputs import Payload, make_run_dir, malicious_pt
from typer.testing import CliRunner

from ferkit.cli.main import app
from ferkit.data.synthetic import make_synthetic_folders
from ferkit.errors import FerkitError
from ferkit.extras import TRAIN_INSTALL, require_train
from ferkit.inference import Recognizer
from ferkit.models.bundle import ModelBundle
from ferkit.models.factory import load_checkpoint, read_bundle

TRAINING = ("torch", "timm", "matplotlib", "sklearn", "scipy", "pytorch_grad_cam", "onnx", "yaml", "pydantic")
HEAVY = (*TRAINING, "cv2")  # OpenCV is in the video extra


def test_inference_and_the_cli_import_nothing_of_the_training_extra():
    script = textwrap.dedent(f"""
        import sys
        import ferkit.inference, ferkit.inference.video, ferkit.inference.annotate, ferkit.cli.main
        from ferkit.inference.recognizer import read_image
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        layers = [m for m in sys.modules
                  if m.startswith(("ferkit.training", "ferkit.evaluation", "ferkit.export"))]
        assert not heavy and not layers, (heavy, layers)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_photos_work_without_opencv_and_video_names_its_extra(tmp_path):
    """The light install has no OpenCV: predict, annotate and the YuNet detector run without it, and
    what needs it (videos, the Haar detector) says which extra to install; a batch does its photos
    and names the extra in its videos' rows; the web API answers with an annotated image."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["cv2"] = None  # as if not installed: `import cv2` fails, find_spec sees None
        from typer.testing import CliRunner
        from ferkit.cli.main import app
        from ferkit.errors import FerkitError
        from ferkit.inference import make_detector
        out = {str(tmp_path)!r}
        res = CliRunner().invoke(app, ["demo", "--out", out])
        assert res.exit_code == 0 and "happy" in res.output, res.output
        res = CliRunner().invoke(app, ["video", out + "/v.mp4"])
        assert isinstance(res.exception, FerkitError), res.output
        assert str(res.exception).startswith("reading video files and webcams needs the video extra: "
                                             "pip install 'ferkit[video]' (missing: opencv-python-headless)")
        try:
            make_detector("haar")
        except FerkitError as exc:
            assert "the haar face detector needs the video extra" in str(exc), exc
        else:
            raise AssertionError("haar without OpenCV")
        from ferkit import read_results
        from ferkit.batch import BatchOptions, run_batch
        run_batch([out + "/astronaut.jpg", out + "/v.mp4"], out + "/batch", BatchOptions(model="fast"),
                  progress=False)
        rows = read_results(out + "/batch").set_index("source")
        assert rows.loc[out + "/astronaut.jpg", "status"] == "face", rows
        assert "needs the video extra" in rows.loc[out + "/v.mp4", "error"], rows
        from fastapi.testclient import TestClient
        from ferkit.inference import Recognizer
        from ferkit.serve import Limits, Service, create_app
        photo = open(out + "/astronaut.jpg", "rb").read()
        with TestClient(create_app(Service(Recognizer.load("fast"), Limits(), "fast", "yunet"))) as client:
            res = client.post("/v1/predict", files=[("file", ("a.jpg", photo))], data={{"annotate": "true"}})
        assert res.status_code == 200 and res.headers["content-type"] == "image/png", res.text[:300]
        assert "cv2" not in {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
        print("ok")
    """)
    (tmp_path / "v.mp4").write_bytes(b"not a video")
    shutil.copy(ASTRONAUT, tmp_path / "astronaut.jpg")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr
    assert (tmp_path / "astronaut_annotated.jpg").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["train", "--out", "x"], "ferkit train"),
        (["evaluate", "run", "--data", "d"], "ferkit evaluate"),
        (["explain", "run", "a.png"], "ferkit explain"),
        (["compare", "a", "b", "--data", "d", "--out", "o"], "ferkit compare"),
        (["export", "run", "--onnx", "m.onnx"], "ferkit export"),
        (["data", "inspect", "d"], "ferkit data inspect"),
        (["video", "v.mp4", "--plot", "p.png"], "ferkit video --plot"),
        (["predict", "a.png", "--model", "run"], "a torch checkpoint (run directory or .pt file)"),
    ],
)
def test_commands_of_the_training_extra_name_the_install(args, what, monkeypatch, tmp_path):
    for module in ("torch", "scipy", "matplotlib"):  # as if not installed: find_spec sees None
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "v.mp4").write_bytes(b"")
    (tmp_path / "run").mkdir()
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, FerkitError), res.output
    assert str(res.exception).startswith(f"{what} needs the training extra: {TRAIN_INSTALL} (missing: ")


def test_require_train_is_quiet_when_installed():
    require_train("anything")  # every import name in TRAIN_MODULES is right (the tests have the extra)


def test_the_payload_really_runs_code_when_unpickled(tmp_path):
    """The malicious files of these tests are real: plain unpickling runs their code."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.read_text() == "code ran"
    marker.unlink()
    torch.load(malicious_pt(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


def test_python_api_refuses_malicious_model_files(tmp_path):
    marker = tmp_path / "PWNED"
    evil = malicious_pt(tmp_path / "evil.pt", marker)
    run = make_run_dir(tmp_path / "run", make_synthetic_folders(tmp_path / "faces", 2, 1), best=evil)
    for load in (
        lambda: Recognizer.from_run(run),
        lambda: Recognizer.from_path(evil),
        lambda: Recognizer.load(str(evil)),
        lambda: load_checkpoint(evil),
        lambda: load_checkpoint(run, evil),
        lambda: read_bundle(run),
    ):
        with pytest.raises(FerkitError, match=r"not a ferkit model file: .*refused to load"):
            load()
    assert not marker.exists()


def test_checkpoints_written_before_the_typed_bundle_still_load(tiny_run, tmp_path):
    """The earlier format: a plain dict bundle under "model", as `torch.save` wrote it."""
    bundle = read_bundle(tiny_run)
    old = {
        "spec": bundle.spec.model_dump(mode="json"),
        "class_names": bundle.class_names,
        "preprocessing": bundle.preprocessing.to_dict(),
        "state_dict": bundle.state_dict,
    }
    torch.save({"model": old, "epoch": 2, "metrics": {"val_acc": 0.5}}, tmp_path / "old.pt")
    model, names, pp = load_checkpoint(tmp_path / "old.pt")
    assert names == bundle.class_names and pp == bundle.preprocessing
    reference, _, _ = load_checkpoint(tiny_run)
    x = torch.rand(2, pp.in_chans, pp.input_size, pp.input_size)
    torch.testing.assert_close(model(x), reference(x))


def test_bundle_round_trip_and_validation():
    from ferkit.models.preprocess import Preprocessing
    from ferkit.models.spec import ModelSpec

    pp = Preprocessing(48, (0.5,), (0.5,))
    one = ModelBundle(["a", "b"], pp, ModelSpec(name="lite0"), {"w": torch.zeros(2)}, source={"epoch": 1})
    both = ModelBundle(["a", "b"], pp, members=[one, one])
    again = ModelBundle.from_dict(both.to_dict(), "x.pt")
    assert again.members[0].spec == one.spec and again.members[1].source == {"epoch": 1}
    for bad, reason in (
        ([], "expected a dict"),
        ({"class_names": "ab", "preprocessing": pp.to_dict()}, "class_names must be a list of strings"),
        (
            {"class_names": ["a"], "preprocessing": pp.to_dict(), "spec": {}, "state_dict": {"w": 1}},
            "tensors",
        ),
        (
            {"class_names": ["a"], "preprocessing": pp.to_dict(), "spec": {"head": "x"}, "state_dict": {}},
            "head",
        ),
    ):
        with pytest.raises(FerkitError, match=rf"not a ferkit model file: x\.pt \(model bundle: .*{reason}"):
            ModelBundle.from_dict(bad, "x.pt")
