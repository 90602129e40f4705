"""Inference: detectors, the Recognizer on crops/images/files, torch vs ONNX, video streaming, the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from ferkit.cli.main import app
from ferkit.data.synthetic import CLASSES, draw_face
from ferkit.errors import FerkitError
from ferkit.evaluation.gradcam import gradcam_overlays, target_layers
from ferkit.export import export_onnx
from ferkit.inference import Recognizer, make_detector
from ferkit.inference.detect import YUNET_ASSET, square_crop
from ferkit.inference.recognizer import expand_inputs, read_image
from ferkit.models.factory import load_checkpoint, read_bundle
from ferkit.models.predict import predict_proba
from ferkit.training.checkpoint import atomic_save


def astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def face_files(tiny_run: Path, n: int = 10) -> list[Path]:
    """``n`` of the 40 test images of the tiny run's data, spread over the classes."""
    return sorted((tiny_run.parent / "faces" / "test").rglob("*.png"))[:: 40 // n]


@pytest.fixture(scope="module")
def tiny_onnx(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_run, out, samples=8)
    return out


@pytest.fixture
def torch_rec(tiny_run) -> Recognizer:
    return Recognizer.from_run(tiny_run, detector="none")


# --- torch vs ONNX, export -------------------------------------------------------------------------


def test_onnx_and_torch_agree(tiny_run, tiny_onnx, torch_rec):
    onnx_rec = Recognizer.from_onnx(tiny_onnx, detector="none")
    assert onnx_rec.class_names == torch_rec.class_names == list(CLASSES)
    assert onnx_rec.preprocessing == torch_rec.preprocessing
    files = face_files(tiny_run, 40)
    a = [f.faces[0] for f in torch_rec.predict_files(files)]
    b = [f.faces[0] for f in onnx_rec.predict_files(files)]
    assert [f.label for f in a] == [f.label for f in b]
    pa = np.array([list(f.probabilities.values()) for f in a])
    pb = np.array([list(f.probabilities.values()) for f in b])
    assert np.abs(pa - pb).max() < 1e-4
    assert len({f.label for f in a}) > 1  # a model that says one thing everywhere would prove little


def test_fp16_export_halves_the_file_and_keeps_the_predictions(tiny_run, tiny_onnx, tmp_path):
    out = tmp_path / "half.onnx"
    report = export_onnx(tiny_run, out, weights="fp16", samples=8)
    assert report.weights == "fp16" and 0 < report.max_diff_stored < 1e-2
    weights = {g: [onnx.numpy_helper.to_array(i) for i in onnx.load(str(f)).graph.initializer if i.dims]
               for g, f in (("full", tiny_onnx), ("half", out))}  # fmt: skip
    assert {w.dtype.name for w in weights["half"]} - {"int64"} == {"float16"}
    float_bytes = {g: sum(w.nbytes for w in ws if w.dtype.kind == "f") for g, ws in weights.items()}
    assert float_bytes["half"] * 2 == float_bytes["full"] > 0
    assert out.stat().st_size < 0.7 * tiny_onnx.stat().st_size  # tiny model: graph text is a bigger share
    full, half = Recognizer.from_onnx(tiny_onnx, detector="none"), Recognizer.from_onnx(out, detector="none")
    assert half.preprocessing == full.preprocessing and half.class_names == full.class_names
    files = face_files(tiny_run, 40)
    pa = np.array([list(r.faces[0].probabilities.values()) for r in full.predict_files(files)])
    pb = np.array([list(r.faces[0].probabilities.values()) for r in half.predict_files(files)])
    diff = np.abs(pa - pb).max()
    assert 0 < diff < 1e-2  # rounded weights: close, not bit-identical
    with pytest.raises(FerkitError, match="weights must be one of fp32, fp16, int8, not 'fp8'"):
        export_onnx(tiny_run, tmp_path / "x.onnx", weights="fp8")


def test_onnx_errors(tmp_path):
    with pytest.raises(FerkitError, match=r"nope\.onnx: ONNX model file not found"):
        Recognizer.from_onnx(tmp_path / "nope.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(FerkitError, match=r"junk\.onnx: not a readable ONNX model"):
        Recognizer.from_onnx(tmp_path / "junk.onnx")
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(
        onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), tmp_path / "o.onnx"
    )
    with pytest.raises(FerkitError, match=r"o\.onnx: not a ferkit model .*ferkit export"):
        Recognizer.from_onnx(tmp_path / "o.onnx")


def test_export_rejects_bad_arguments(tiny_run, tmp_path):
    with pytest.raises(FerkitError, match="both --data and --split"):
        export_onnx(tiny_run, tmp_path / "m.onnx", data=tiny_run.parent / "faces")
    with pytest.raises(FerkitError, match=r"must end in \.onnx"):
        export_onnx(tiny_run, tmp_path / "m.bin")
    with pytest.raises(FerkitError, match="no checkpoint here"):
        export_onnx(tmp_path, tmp_path / "m.onnx")


def test_the_onnx_path_imports_no_torch(tiny_run, tiny_onnx):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from ferkit.inference import Recognizer
        import ferkit.inference.video, ferkit.inference.annotate
        rec = Recognizer.from_onnx({str(tiny_onnx)!r}, detector="none")
        faces = rec.predict_faces([np.full((48, 48), 128, np.uint8), np.zeros((60, 50, 3), np.uint8)])
        files = list(rec.predict_files([{str(face_files(tiny_run)[0])!r}]))
        assert len(faces) == 2 and len(files[0].faces) == 1
        heavy = [m for m in sys.modules
                 if m.split(".")[0] in ("torch", "timm", "matplotlib", "sklearn", "scipy")]
        layers = [m for m in sys.modules if m.startswith(("ferkit.training", "ferkit.evaluation"))]
        assert not heavy and not layers, (heavy[:5], layers)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


# --- Recognizer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_batched_and_one_by_one_predictions_are_equal(tiny_run, tiny_onnx, backend):
    rec = Recognizer.from_run(tiny_run) if backend == "torch" else Recognizer.from_onnx(tiny_onnx)
    rng = np.random.default_rng(1)
    crops = [cv2.resize(draw_face(CLASSES[i % 5], rng), (30 + 7 * i, 30 + 5 * i)) for i in range(12)]
    crops += [
        np.repeat(crops[0][..., None], 3, 2),
        np.dstack([crops[1]] * 3 + [crops[1]]),
        crops[2][..., None],
    ]
    batched = rec.predict_faces(crops, batch_size=64)
    single = [rec.predict_faces([c], batch_size=1)[0] for c in crops]
    small = rec.predict_faces(crops, batch_size=4)
    assert [p.label for p in batched] == [p.label for p in single] == [p.label for p in small]
    for a, b in zip(batched, single, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert batched[12].probabilities == pytest.approx(batched[0].probabilities, abs=1e-5)  # gray == RGB gray
    assert batched[0].box == (0, 0, 30, 30) and batched[3].box == (0, 0, 51, 45)


def test_bad_crops_and_arguments_are_clear(torch_rec):
    with pytest.raises(FerkitError, match="face crop 1: expected a uint8 image, got dtype float32"):
        torch_rec.predict_faces([np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32)])
    with pytest.raises(FerkitError, match=r"image 0: expected an \(H, W\).*shape \(4, 4, 2\)"):
        torch_rec.predict_images([np.zeros((4, 4, 2), np.uint8)])
    with pytest.raises(FerkitError, match="batch size must be >= 1"):
        torch_rec.predict_faces([np.zeros((8, 8), np.uint8)], batch_size=0)
    assert torch_rec.predict_faces([]) == [] and torch_rec.predict_images([]) == []


def test_flip_tta_averages_each_face_with_its_mirror(tiny_run, torch_rec):
    crops = [read_image(f) for f in face_files(tiny_run, 20)]
    plain = torch_rec.probabilities(crops)
    mirrored = torch_rec.probabilities([c[:, ::-1] for c in crops])
    rec = Recognizer.from_run(tiny_run, detector="none")
    rec.tta = "flip"
    flip = rec.probabilities(crops)
    np.testing.assert_allclose(flip, (plain + mirrored) / 2, atol=1e-5)
    assert np.abs(flip - plain).max() > 1e-3  # the mirror really changes the answer
    # the same average as evaluation's flip TTA (models.predict) on network-size crops
    model, _, pp = load_checkpoint(tiny_run)
    side = np.stack([cv2.resize(c, (pp.input_size,) * 2, interpolation=cv2.INTER_LINEAR) for c in crops])
    reference = predict_proba(model, side[..., None], pp, tta="flip")
    np.testing.assert_allclose(flip, reference, atol=1e-5)
    with pytest.raises(FerkitError, match=r"tta must be one of none, flip.*not 'mirror'"):
        torch_rec.tta = "mirror"


# --- ensembles ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_model(tiny_run, tmp_path_factory) -> Path:
    """A second model with the tiny run's classes and preprocessing but a different head."""
    bundle = read_bundle(tiny_run)
    gen = torch.Generator().manual_seed(0)
    bundle.state_dict = {
        k: v + torch.randn(v.shape, generator=gen) if k.startswith("head.") else v
        for k, v in bundle.state_dict.items()
    }
    path = tmp_path_factory.mktemp("other") / "other.pt"
    atomic_save({"model": bundle.to_dict()}, path)
    return path


def test_an_ensemble_predicts_the_mean_of_its_members(tiny_run, other_model):
    crops = [read_image(f) for f in face_files(tiny_run, 40)]
    a = Recognizer.from_run(tiny_run, detector="none").probabilities(crops)
    b = Recognizer.from_run(other_model, detector="none").probabilities(crops)
    assert np.abs(a - b).max() > 0.05  # the members really differ
    both = Recognizer.from_run([tiny_run, other_model], detector="none")
    np.testing.assert_allclose(both.probabilities(crops), (a + b) / 2, atol=1e-5)


def test_an_ensemble_exports_to_one_onnx_file(tiny_run, other_model, tmp_path):
    out = tmp_path / "ensemble.onnx"
    report = export_onnx([tiny_run, other_model], out, samples=8)
    assert report.max_diff_fp32 < 1e-4
    crops = [read_image(f) for f in face_files(tiny_run, 40)]
    torch_probs = Recognizer.from_run([tiny_run, other_model], detector="none").probabilities(crops)
    onnx_probs = Recognizer.from_onnx(out, detector="none").probabilities(crops)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)


def test_ensemble_members_must_share_classes_and_preprocessing(tiny_run, tmp_path):
    bundle = read_bundle(tiny_run)
    bundle.class_names = list(reversed(bundle.class_names))
    atomic_save({"model": bundle.to_dict()}, tmp_path / "reversed.pt")
    with pytest.raises(FerkitError, match=r"reversed\.pt: class_names .* differ from .*only models with the"):
        load_checkpoint(tiny_run, tmp_path / "reversed.pt")


def test_gradcam_on_an_ensemble_averages_its_members(tiny_run, other_model):
    model, _, pp = load_checkpoint(tiny_run, other_model)
    assert len(target_layers(model)) == 2
    images = np.stack([read_image(f) for f in face_files(tiny_run, 4)])
    overlays = gradcam_overlays(model, images, [0, 1, 2, 3], pp)
    assert overlays.shape == (4, pp.input_size, pp.input_size, 3) and overlays.std() > 0


def test_default_model_prefers_onnx_then_pt_else_a_clear_error(tiny_run, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr("ferkit.inference.recognizer.ASSETS", tmp_path)
    with pytest.raises(FerkitError, match="no 'default' model is shipped in this installation"):
        Recognizer.default()
    (tmp_path / "default_model.pt").symlink_to(tiny_run / "checkpoints" / "best.pt")
    assert type(Recognizer.default(detector="none").backend).__name__ == "TorchBackend"
    (tmp_path / "default_model.onnx").symlink_to(tiny_onnx)
    rec = Recognizer.default(detector="none")
    assert type(rec.backend).__name__ == "OnnxBackend" and rec.class_names == list(CLASSES)
    assert rec.tta == "flip" and Recognizer.default(detector="none", tta="none").tta == "none"


def test_square_crops_are_padded_at_borders():
    img = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30, 1)
    crop = square_crop(img, (0, 0, 10, 6), margin=0.2)  # side 12, centred on (5, 3): pads top and left
    assert crop.shape == (12, 12, 1)
    assert (crop[:3, 1:] == crop[3:4, 1:]).all() and (crop[3:, 0] == crop[3:, 1]).all()
    assert (crop[3:, 1:] == img[:9, :11]).all()
    inside = square_crop(img, (10, 5, 10, 10), margin=0.0)
    assert (inside == img[5:15, 10:20]).all()


def test_yunet_finds_exactly_the_astronaut():
    dets = make_detector("yunet").detect(astronaut())
    assert len(dets) == 1
    x, y, w, h = dets[0].box
    assert 190 < x + w / 2 < 250 and 80 < y + h / 2 < 150 and 60 < w < 140  # her face, roughly
    assert dets[0].score is not None and dets[0].score > 0.8


def test_haar_finds_the_astronaut():
    dets = make_detector("haar").detect(astronaut())
    assert len(dets) >= 1
    x, y, w, h = dets[0].box  # largest first
    assert 190 < x + w / 2 < 250 and 80 < y + h / 2 < 150


@pytest.mark.parametrize("detector", ["haar", "yunet"])
def test_image_without_face_gives_empty_result(tiny_run, detector):
    rec = Recognizer.from_run(tiny_run, detector=detector)
    flat, photo = np.full((240, 320, 3), 128, np.uint8), astronaut()
    results = rec.predict_images([flat, photo, flat[..., 0]], sources=["flat", "photo", "gray"])
    assert [len(r.faces) >= 1 for r in results] == [False, True, False]
    assert results[0].error is None and (results[0].width, results[0].height) == (320, 240)
    face = results[1].faces[0]
    assert set(face.probabilities) == set(CLASSES) and face.score == max(face.probabilities.values())
    assert json.loads(json.dumps(results[1].to_dict()))["faces"][0]["box"]["w"] == face.box[2]


def test_unreadable_files_become_error_entries_and_the_run_goes_on(tiny_run, torch_rec, tmp_path):
    good = face_files(tiny_run, 2)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "cut.png").write_bytes(good[0].read_bytes()[:60])
    paths = [good[0], tmp_path / "empty.jpg", tmp_path / "text.png", tmp_path / "cut.png", good[1]]
    results = list(torch_rec.predict_files(paths, images_per_chunk=2))
    assert [r.source for r in results] == [str(p) for p in paths]
    assert [len(r.faces) for r in results] == [1, 0, 0, 0, 1]
    assert results[0].error is None and results[4].error is None
    assert "empty.jpg: empty file" in results[1].error
    assert "text.png: not an image" in results[2].error
    assert "cut.png: corrupt or truncated" in results[3].error


def test_predict_files_takes_folders_like_the_cli(tiny_run, torch_rec, tmp_path):
    faces = face_files(tiny_run, 2)
    (tmp_path / "sub").mkdir()
    for i, f in enumerate(faces):
        (tmp_path / "sub" / f"{i}.png").write_bytes(f.read_bytes())
    (tmp_path / "sub" / "notes.txt").write_text("not an image, not listed")
    (tmp_path / "bad.jpg").write_text("listed, unreadable")
    results = list(torch_rec.predict_files([tmp_path, faces[0]]))
    assert [Path(r.source).name for r in results] == ["bad.jpg", "0.png", "1.png", faces[0].name]
    assert results[0].error and [len(r.faces) for r in results[1:]] == [1, 1, 1]


def test_expand_inputs_files_folders_globs(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    for name in ("a/1.png", "a/b/2.JPG", "a/notes.txt", "a/._3.jpg", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_inputs([tmp_path / "a"]) == [tmp_path / "a/1.png", tmp_path / "a/b/2.JPG"]
    assert expand_inputs([str(tmp_path / "*.webp"), tmp_path / "a/notes.txt", tmp_path / "c.webp"]) == [
        tmp_path / "c.webp",
        tmp_path / "a/notes.txt",
    ]
    with pytest.raises(FerkitError, match=r"nothing\.png: no such file or folder"):
        expand_inputs([tmp_path / "nothing.png"])
    with pytest.raises(FerkitError, match=r"\*\.gif: no file matches"):
        expand_inputs([str(tmp_path / "*.gif")])


# --- YuNet model discovery -------------------------------------------------------------------------


def test_yunet_is_shipped_and_overridable(monkeypatch, tmp_path):
    monkeypatch.delenv("FERKIT_YUNET_MODEL", raising=False)
    shipped = make_detector("yunet").model_path
    assert shipped.parent.name == "assets" and shipped.name == YUNET_ASSET
    assert (shipped.parent / "YUNET_LICENSE.txt").read_text().count("MIT License") == 1
    (tmp_path / "bad.onnx").write_text("not onnx")
    monkeypatch.setenv("FERKIT_YUNET_MODEL", str(tmp_path / "bad.onnx"))  # the variable overrides it
    with pytest.raises(FerkitError, match=r"bad\.onnx: not a usable YuNet ONNX model"):
        make_detector("yunet")
    monkeypatch.setenv("FERKIT_YUNET_MODEL", str(tmp_path / "copy.onnx"))
    (tmp_path / "copy.onnx").symlink_to(shipped)
    assert make_detector("yunet").model_path == tmp_path / "copy.onnx"
    with pytest.raises(FerkitError, match=r"nope\.onnx: YuNet face detector model not found"):
        make_detector("yunet", model_path=tmp_path / "nope.onnx")  # the argument overrides both
    with pytest.raises(FerkitError, match="unknown face detector 'mtcnn'"):
        make_detector("mtcnn")


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_predict_writes_json_csv_and_annotated_copies(tiny_run, tmp_path):
    files = face_files(tiny_run, 4)
    (tmp_path / "broken.jpg").write_text("no")
    outputs = [
        "--json",
        str(tmp_path / "r.json"),
        "--csv",
        str(tmp_path / "r.csv"),
        "--annotate",
        str(tmp_path / "ann"),
    ]
    args = ["predict", str(files[0]), str(files[1].parent / "*.png"), str(tmp_path / "broken.jpg"),
            "--model", str(tiny_run), "--detector", "none", *outputs, "--batch-size", "3",
            "--tta", "flip"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert files[0].parent != files[1].parent
    results = json.loads((tmp_path / "r.json").read_text())
    assert len(results) == 1 + len(list(files[1].parent.glob("*.png"))) + 1
    assert [r["source"] for r in results][:2] == [
        str(files[0]),
        str(sorted(files[1].parent.glob("*.png"))[0]),
    ]
    assert results[-1]["error"] and "broken.jpg" in results[-1]["error"]
    rows = read_csv(tmp_path / "r.csv")
    assert len(rows) == len(results) and list(rows[0])[:6] == ["image", "face", "x", "y", "w", "h"]
    assert rows[-1]["label"] == "" and "broken.jpg" in rows[-1]["error"]
    written = sorted((tmp_path / "ann").iterdir())
    copy = cv2.imread(str(written[0]))
    # the whole 48x48 face is the box: its bars go to a side panel, never over the face
    assert len(written) == len(results) - 1 and copy.shape[0] >= 48 and copy.shape[1] > 48
    assert "unreadable" in res.output and "error:" in res.output
    assert not list(tmp_path.glob(".*tmp*"))


def test_cli_predict_errors(tiny_run, tmp_path, monkeypatch):
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "missing.jpg"), "--model", str(tiny_run)])
    assert isinstance(res.exception, FerkitError) and "missing.jpg: no such file or folder" in str(
        res.exception
    )
    one = str(face_files(tiny_run)[0])
    monkeypatch.setattr("ferkit.inference.recognizer.ASSETS", tmp_path)  # as if none were shipped
    res = CliRunner().invoke(app, ["predict", one])
    assert "no 'default' model is shipped" in str(res.exception)
    res = CliRunner().invoke(app, ["predict", one, "--model", str(tiny_run), "--detector", "dlib"])
    assert "unknown face detector 'dlib'" in str(res.exception)
    res = CliRunner().invoke(app, ["predict", one, "--model", str(tiny_run), "--tta", "mirror"])
    assert "tta must be one of none, flip" in str(res.exception)


def test_int8_export_needs_calibration_faces(tiny_run, tmp_path):
    with pytest.raises(FerkitError, match="int8 export calibrates on real faces: give --data"):
        export_onnx(tiny_run, tmp_path / "q.onnx", weights="int8")
    assert not (tmp_path / "q.onnx").exists()


def test_cli_export_int8_reports_difference_and_accuracy(tiny_run, tmp_path):
    out = tmp_path / "m" / "int8.onnx"
    args = ["export", str(tiny_run), "--onnx", str(out), "--int8", "--data", str(tiny_run.parent / "faces"),
            "--split", "test"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "max |p_onnx - p_torch| over 64 sample faces: fp32" in res.output and ", int8 " in res.output
    assert (
        "accuracy on split 'test' (40 images): torch" in res.output and "int8 accuracy change" in res.output
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["int8.onnx"]  # no temporary files left
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # static QDQ ...
    assert not ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}  # ... not dynamic
    int8_weights = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert any(len(i.dims) == 4 for i in int8_weights)  # conv weights stored as int8
    scales = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert any(v.ndim == 1 and v.size > 1 for k, v in scales.items() if "scale" in k)  # per channel
    check = json.loads({p.key: p.value for p in model.metadata_props}["ferkit.int8_check"])
    assert (
        check["split"] == "test" and check["n"] == 40 and set(check["accuracy"]) >= {"onnx_fp32", "onnx_int8"}
    )
    drop = 100 * (check["accuracy"]["onnx_fp32"] - check["accuracy"]["onnx_int8"])
    assert (check["warning"] is not None) == (drop > 1.0) and ("WARNING" in res.output) == (drop > 1.0)
    rec = Recognizer.from_onnx(out, detector="none")
    probs = rec.probabilities([np.full((48, 48), v, np.uint8) for v in (0, 90, 200)])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)  # the softmax is not quantized
    assert rec.class_names == list(CLASSES)
    assert len(rec.predict_faces([np.zeros((48, 48), np.uint8)] * 70)) == 70  # dynamic batch axis


def test_threads_option_reaches_the_onnx_session(tiny_run, tmp_path):
    out = tmp_path / "t.onnx"
    export_onnx(tiny_run, out, samples=8)
    rec = Recognizer.load(str(out), detector="none", threads=1)
    assert rec.backend.session.get_session_options().intra_op_num_threads == 1
    default = Recognizer.load(str(out), detector="none")
    options = default.backend.session.get_session_options()
    assert options.intra_op_num_threads == 0  # onnxruntime: one per core
    assert (
        Recognizer.default(detector="none", threads=1)
        .backend.session.get_session_options()
        .intra_op_num_threads
        == 1
    )
    with pytest.raises(FerkitError, match="threads must be >= 1, not 0"):
        Recognizer.load(str(out), detector="none", threads=0)
    res = CliRunner().invoke(app, ["predict", str(tmp_path), "--model", str(out), "--threads", "0"])
    assert res.exit_code != 0 and "--threads" in res.output
