"""A corpus of bad inputs, run through the real `ferkit` entry point.

Every case asserts the exit code, the one-line message (naming the file or field and what is
wrong), that no traceback appears, and that no partial output is left: after a user error (exit 2)
the output folder is empty; after "nothing could be read" (exit 1) predict's outputs are complete.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, write_fer_csv

from ferkit.cli.main import main
from ferkit.data.synthetic import make_synthetic_folders
from ferkit.training.config import dump_config, load_config


class Payload:
    """A pickle that writes a marker file when unpickled: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def malicious_pt(path: Path, marker: Path) -> Path:
    """A real torch.save archive whose pickle calls exec (the marker is written only if unpickled)."""
    torch.save({"model": Payload(marker), "train_state": Payload(marker)}, path)
    return path


def write_png(path: Path, shape: tuple[int, ...], value: int = 128) -> Path:
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def make_run_dir(path: Path, data: Path, best: Path | None = None, last: Path | None = None) -> Path:
    """A run directory with a valid config.yaml whose checkpoints are the given (bad) files."""
    (path / "checkpoints").mkdir(parents=True)
    cfg = load_config(None, [*TINY_TRAIN, f"data.path={data}"])
    (path / "config.yaml").write_text(dump_config(cfg))
    for name, src in (("best.pt", best), ("last.pt", last)):
        if src is not None:
            (path / "checkpoints" / name).write_bytes(src.read_bytes())
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Every bad file of the corpus, built once: ``<corpus>/<name>``; the marker is ``<corpus>/PWNED``."""
    d = tmp_path_factory.mktemp("corpus")
    marker = d / "PWNED"
    (d / "notes.txt").write_text("shopping list\n")
    (d / "fake.pt").write_text("123abc not a checkpoint")
    (d / "fake.onnx").write_text("not onnx either")
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video")
    malicious_pt(d / "evil.pt", marker)
    # the NumPy arrays model files may hold (RNG state) must not smuggle objects in either
    torch.save({"model": np.array([Payload(marker)], dtype=object)}, d / "evil_numpy.pt")
    (d / "evil.pkl.pt").write_bytes(__import__("pickle").dumps(Payload(marker)))  # a bare pickle
    buf = io.BytesIO()
    torch.save({"epoch": 3}, buf)
    (d / "no_bundle.pt").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"model": {"preprocessing": {}, "state_dict": {}}}, buf)
    (d / "half_bundle.pt").write_bytes(buf.getvalue())
    # images that are hard to read or to detect in, in one folder
    imgs = d / "images"
    imgs.mkdir()
    write_png(imgs / "blank.png", (200, 200, 3), 255)
    write_png(imgs / "one_pixel.png", (1, 1, 3))
    write_png(imgs / "wide.png", (40, 20000, 3))
    write_png(imgs / "tall.png", (20000, 40))
    (imgs / "zero.jpg").write_bytes(b"")
    (imgs / "text.jpg").write_text("hello")
    (imgs / "cut.png").write_bytes((imgs / "blank.png").read_bytes()[:80])
    (d / "no_images").mkdir()
    (d / "no_images" / "readme.md").write_text("nothing to see")
    # datasets
    bad = d / "unreadable_ds"
    for cls, name in (("happy", "a.jpg"), ("sad", "b.png")):
        (bad / cls).mkdir(parents=True)
        (bad / cls / name).write_text("not an image")
    (d / "empty_ds").mkdir()
    (d / "zero.csv").write_bytes(b"")
    (d / "header.csv").write_text("label,image\n1,2\n")
    write_fer_csv(d / "bad_rows.csv", [(1, "1 2 3", "Training"), (9, " ".join(["0"] * 2304), "Training")])
    (d / "broken.zip").write_text("PK not really")
    with tarfile.open(d / "escape.tar.gz", "w:gz") as tf:
        data = b"x"
        info = tarfile.TarInfo("../../escaped.png")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(d / "escape.zip", "w") as zf:
        zf.writestr("../../escaped.png", b"x")
    faces = make_synthetic_folders(d / "faces", per_class=2, test_per_class=1)
    # configs
    (d / "bad_syntax.yaml").write_text("model: [unclosed\n")
    (d / "unknown_key.yaml").write_text("model:\n  nam: lite0\n")
    (d / "list.yaml").write_text("- just\n- a list\n")
    make_run_dir(d / "evil_run", faces, best=d / "evil.pt", last=d / "evil.pt")
    make_run_dir(d / "fake_run", faces, best=d / "fake.pt", last=d / "fake.pt")
    (d / "video_run").mkdir()
    return d


@dataclass
class Case:
    id: str
    args: list[str]  # "{d}" is the corpus folder, "{out}" an empty output folder
    code: int
    message: str  # a substring of stderr ("{d}" expanded)


CASES = [
    # --- data loading
    Case("inspect-missing", ["data", "inspect", "{d}/nope"], 2, "{d}/nope: no such file or directory"),
    Case("inspect-empty-folder", ["data", "inspect", "{d}/empty_ds"], 2, "no files inside class folders"),
    Case("inspect-unreadable-only", ["data", "inspect", "{d}/unreadable_ds", "--json", "{out}/r.json"], 2,
         "{d}/unreadable_ds: no readable images (2 unreadable: happy/a.jpg: not an image"),
    Case("inspect-zero-byte-csv", ["data", "inspect", "{d}/zero.csv"], 2, "zero.csv"),
    Case("inspect-wrong-csv-header", ["data", "inspect", "{d}/header.csv"], 2, "header.csv"),
    Case("inspect-all-rows-bad", ["data", "inspect", "{d}/bad_rows.csv"], 2,
         "bad_rows.csv: no valid rows"),
    Case("inspect-broken-zip", ["data", "inspect", "{d}/broken.zip"], 2, "broken.zip"),
    Case("inspect-tar-escapes", ["data", "inspect", "{d}/escape.tar.gz"], 2, "escape.tar.gz"),
    Case("inspect-zip-escapes", ["data", "inspect", "{d}/escape.zip"], 2, "escape.zip"),
    Case("inspect-bad-color", ["data", "inspect", "{d}/faces", "--color", "purple"], 2, "purple"),
    Case("export-csv-empty", ["data", "export-csv", "{d}/unreadable_ds", "{out}/x.csv"], 2,
         "no readable images"),
    # --- predict
    Case("predict-missing", ["predict", "{d}/nope.jpg", "--json", "{out}/r.json"], 2,
         "{d}/nope.jpg: no such file or folder"),
    Case("predict-folder-without-images", ["predict", "{d}/no_images", "--json", "{out}/r.json"], 2,
         "no image files found in {d}/no_images"),
    Case("predict-text-file", ["predict", "{d}/notes.txt", "--json", "{out}/r.json"], 1,
         "none of the 1 input file(s) could be read"),
    Case("predict-only-unreadable", ["predict", "{d}/images/zero.jpg", "{d}/images/text.jpg",
                                     "{d}/images/cut.png", "--csv", "{out}/r.csv"], 1,
         "none of the 3 input file(s) could be read"),
    Case("predict-model-text",
         ["predict", "{d}/images", "--model", "{d}/notes.txt", "--json", "{out}/r.json"], 2,
         "not a ferkit model file: {d}/notes.txt (not a PyTorch .pt archive)"),
    Case("predict-model-fake-pt", ["predict", "{d}/images", "--model", "{d}/fake.pt"], 2,
         "not a ferkit model file: {d}/fake.pt"),
    Case("predict-model-malicious",
         ["predict", "{d}/images", "--model", "{d}/evil.pt", "--json", "{out}/r.json"], 2,
         "not a ferkit model file: {d}/evil.pt (refused to load: it refers to"),
    Case("predict-model-numpy-payload", ["predict", "{d}/images", "--model", "{d}/evil_numpy.pt"], 2,
         "not a ferkit model file: {d}/evil_numpy.pt (refused to load"),
    Case("predict-model-bare-pickle", ["predict", "{d}/images", "--model", "{d}/evil.pkl.pt"], 2,
         "not a ferkit model file: {d}/evil.pkl.pt (not a PyTorch .pt archive)"),
    Case("predict-model-malicious-run", ["predict", "{d}/images", "--model", "{d}/evil_run"], 2,
         "not a ferkit model file: {d}/evil_run/checkpoints/best.pt (refused to load"),
    Case("predict-model-no-bundle", ["predict", "{d}/images", "--model", "{d}/no_bundle.pt"], 2,
         "not a ferkit model file: {d}/no_bundle.pt (no model bundle inside)"),
    Case("predict-model-half-bundle", ["predict", "{d}/images", "--model", "{d}/half_bundle.pt"], 2,
         "not a ferkit model file: {d}/half_bundle.pt (model bundle: missing 'class_names')"),
    Case("predict-model-empty-dir", ["predict", "{d}/images", "--model", "{d}/video_run"], 2,
         "{d}/video_run/checkpoints/best.pt: no checkpoint here"),
    Case("predict-model-fake-onnx", ["predict", "{d}/images", "--model", "{d}/fake.onnx"], 2,
         "{d}/fake.onnx: not a readable ONNX model"),
    Case("predict-unknown-detector", ["predict", "{d}/images", "--detector", "mtcnn"], 2,
         "unknown face detector 'mtcnn'"),
    Case("predict-yunet-missing", ["predict", "{d}/images", "--yunet-model", "{d}/nope.onnx"], 2,
         "{d}/nope.onnx: YuNet face detector model not found"),
    Case("predict-yunet-not-onnx", ["predict", "{d}/images", "--yunet-model", "{d}/notes.txt"], 2,
         "{d}/notes.txt: not a usable YuNet ONNX model ([ONNXRuntimeError] : 7 : INVALID_PROTOBUF"),
    Case("predict-bad-tta", ["predict", "{d}/images", "--tta", "mirror"], 2, "tta must be one of none, flip"),
    Case("predict-batch-zero", ["predict", "{d}/images", "--batch-size", "0", "--json", "{out}/r.json"], 2,
         "batch size must be >= 1, not 0"),
    # --- video
    Case("video-missing", ["video", "{d}/nope.mp4", "--csv", "{out}/v.csv"], 2,
         "{d}/nope.mp4: video file not found"),
    Case("video-zero-byte", ["video", "{d}/empty.mp4", "--csv", "{out}/v.csv"], 2,
         "{d}/empty.mp4: cannot open"),
    Case("video-text", ["video", "{d}/text.mp4", "--csv", "{out}/v.csv"], 2, "{d}/text.mp4: cannot open"),
    Case("video-file-and-webcam", ["video", "{d}/text.mp4", "--webcam", "0"], 2, "give either a video file"),
    Case("video-every-zero", ["video", "{d}/text.mp4", "--every", "0", "--csv", "{out}/v.csv"], 2,
         "--every must be at least 1"),
    Case("video-malicious-model", ["video", "{d}/text.mp4", "--model", "{d}/evil.pt"], 2,
         "not a ferkit model file: {d}/evil.pt (refused to load"),
    # --- configs and runs
    Case("train-missing-config", ["train", "--out", "{out}/run", "--config", "{d}/nope.yaml"], 2,
         "nope.yaml"),
    Case("train-yaml-syntax", ["train", "--out", "{out}/run", "--config", "{d}/bad_syntax.yaml"], 2,
         "bad_syntax.yaml"),
    Case("train-unknown-key", ["train", "--out", "{out}/run", "--config", "{d}/unknown_key.yaml"], 2,
         "model.nam"),
    Case("train-config-not-mapping", ["train", "--out", "{out}/run", "--config", "{d}/list.yaml"], 2,
         "list.yaml"),
    Case("train-bad-set", ["train", "--out", "{out}/run", "--set", "train.batch_size=-1"], 2,
         "train.batch_size"),
    Case("train-missing-data", ["train", "--out", "{out}/run", "--data", "{d}/nope"], 2,
         "{d}/nope: no such file or directory"),
    Case("train-resume-nothing", ["train", "--out", "{out}/run", "--resume"], 2, "nothing to resume"),
    Case("train-resume-malicious", ["train", "--out", "{d}/evil_run", "--resume"], 2,
         "not a ferkit model file: {d}/evil_run/checkpoints/last.pt (refused to load"),
    Case("train-resume-fake", ["train", "--out", "{d}/fake_run", "--resume"], 2,
         "not a ferkit model file: {d}/fake_run/checkpoints/last.pt (not a PyTorch .pt archive)"),
    Case("evaluate-malicious-run", ["evaluate", "{d}/evil_run", "--data", "{d}/faces", "--out", "{out}/e"], 2,
         "not a ferkit model file: {d}/evil_run/checkpoints/best.pt (refused to load"),
    Case("export-malicious", ["export", "{d}/evil.pt", "--onnx", "{out}/m.onnx"], 2,
         "not a ferkit model file: {d}/evil.pt (refused to load"),
]  # fmt: skip


def run_main(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """`ferkit ARGS` in this process through the real entry point; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["ferkit", *args])
    with pytest.raises(SystemExit) as stop:  # any other exception is a crash and fails the test
        main()
    captured = capsys.readouterr()
    return int(stop.value.code or 0), captured.out, captured.err


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, corpus: Path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(d=corpus, out=out) for a in case.args]
    code, stdout, stderr = run_main(args, monkeypatch, capsys)
    assert code == case.code, (stdout, stderr)
    assert stderr.count("error: ") == 1, stderr  # progress bars may come before it
    message = stderr[stderr.index("error: ") :]  # one line; config errors list one field per line
    assert case.message.format(d=corpus) in message, stderr
    assert "Traceback" not in stderr + stdout
    assert not (corpus / "PWNED").exists(), "a model file ran code"
    left = sorted(p.name for p in out.rglob("*"))
    if code == 2:
        assert left == [], f"partial output after an error: {left}"
    else:  # nothing read: the outputs exist, complete, and say why for every input
        assert not [n for n in left if n.startswith(".")], left
        if (out / "r.json").exists():
            assert all(r["error"] for r in json.loads((out / "r.json").read_text()))


def test_predict_over_hard_images_writes_a_result_for_every_file(corpus, tmp_path, monkeypatch, capsys):
    """Blank, 1-pixel, 20000x40, 40x20000, zero-byte, text and truncated images: one row each."""
    args = [
        "predict",
        str(corpus / "images"),
        "--json",
        str(tmp_path / "r.json"),
        "--csv",
        str(tmp_path / "r.csv"),
    ]
    code, stdout, stderr = run_main(args, monkeypatch, capsys)
    assert code == 0, stderr
    results = {Path(r["source"]).name: r for r in json.loads((tmp_path / "r.json").read_text())}
    assert sorted(results) == sorted(p.name for p in (corpus / "images").iterdir())
    for name in ("zero.jpg", "text.jpg", "cut.png"):
        assert results[name]["error"] and name in results[name]["error"]
    for name in ("blank.png", "one_pixel.png", "wide.png", "tall.png"):
        assert results[name]["error"] is None and results[name]["faces"] == []
    assert (results["wide.png"]["width"], results["wide.png"]["height"]) == (20000, 40)
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 1 + len(results)
    assert "images: 7, faces: 0, no face: 4, unreadable: 3" in stdout
