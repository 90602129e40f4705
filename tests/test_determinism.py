"""Same input, same answer (issue 22): a photo's faces and probabilities do not depend on the process,
the thread count, the chunk or batch it is processed in, or on what was processed before it. Photos
of mixed sizes include face crops of at most 32 px a side, where OpenCV's DNN used to compute YuNet
from uninitialised memory; the faces come from the bundled photo."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from photo_fixtures import make_photo_pool
from PIL import Image

from ferkit.inference import Recognizer
from ferkit.inference.detect import YuNetDetector, square_crop
from ferkit.inference.moving_faces import moving_scene, render
from ferkit.inference.video import VideoOptions, VideoOutputs, process_video

PHOTO = resources.files("ferkit") / "assets" / "astronaut.jpg"
TINY = [(28, 44), (30, 38), (32, 38), (28, 41), (32, 44), (30, 44)]  # (w, h): tight face crops, <= 32 px wide
LARGE = [(512, 512), (350, 350), (640, 400), (97, 120), (300, 480)]  # (w, h): the whole photo


def astronaut() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def tiny_faces() -> list[np.ndarray]:
    """The bundled photo's face, cut tight and shrunk to a photo at most 32 px wide (as in muxspace)."""
    image = astronaut()
    face = square_crop(image, YuNetDetector().detect(image)[0].box, 0.0)
    return [cv2.resize(face, size, interpolation=cv2.INTER_AREA) for size in TINY]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Mixed sizes, colour and gray, tiny crops between large photos (sorted names interleave them)."""
    root = tmp_path_factory.mktemp("mixed")
    image = astronaut()
    for i, face in enumerate(tiny_faces()):
        Image.fromarray(face).save(root / f"{2 * i:02d}_tiny.png")
    for i, (w, h) in enumerate(LARGE):
        big = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        gray = big.mean(axis=2).astype(np.uint8)
        Image.fromarray(big if i % 2 else gray).save(root / f"{2 * i + 1:02d}.png")
    make_photo_pool(root / "synthetic", [(48, 48), (120, 90), (30, 60)], per_class=1)
    return sorted(p for p in root.rglob("*") if p.suffix in (".png", ".jpg"))


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer.default()


def results(rec: Recognizer, paths: list[Path], **kwargs) -> dict[str, dict]:
    return {r.source: r.to_dict() for r in rec.predict_files([str(p) for p in paths], **kwargs)}


def test_two_processes_write_identical_json(photos, tmp_path):
    outs = []
    for run in range(2):
        out = tmp_path / f"run{run}.json"
        cmd = [sys.executable, "-m", "ferkit.cli.main", "predict", *map(str, photos), "--json", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    faces = {d["source"]: len(d["faces"]) for d in json.loads(outs[0])}
    assert all(faces[str(p)] == 1 for p in photos if p.name.endswith("_tiny.png"))  # the hard case found


def test_a_photo_alone_equals_the_photo_inside_a_mixed_batch(rec, photos):
    together = results(rec, photos, images_per_chunk=len(photos), batch_size=64)
    for p in photos:
        assert results(rec, [p]) == {str(p): together[str(p)]}, p.name


@pytest.mark.parametrize(("threads", "chunk", "batch"), [(1, 1, 1), (2, 3, 5), (3, 7, 64)])
def test_thread_counts_chunks_and_batches_give_identical_results(rec, photos, threads, chunk, batch):
    reference = results(rec, photos)
    other = Recognizer.default(threads=threads)
    assert results(other, photos, images_per_chunk=chunk, batch_size=batch) == reference


def test_yunet_does_not_remember_earlier_images():
    """Each tiny crop gives the same raw detections on a fresh detector and after other sizes."""
    faces, image = tiny_faces(), astronaut()
    used = YuNetDetector(score_threshold=0.05)
    for face in faces:
        fresh = YuNetDetector(score_threshold=0.05)._find(face)
        used._find(image), used._find(cv2.resize(image, (350, 350)))
        assert used._find(face) == fresh and fresh


def test_the_same_video_twice_gives_an_identical_csv(rec, photos, tmp_path):
    video = tmp_path / "moving.avi"
    render(video, moving_scene(320, 240, 20, people=2), 20, (320, 240), 15.0, fourcc="FFV1")
    csvs = []
    for run in range(2):
        out = tmp_path / f"{run}.csv"
        process_video(rec, video, VideoOptions(detect_every=2), VideoOutputs(csv=out), progress=False)
        csvs.append(out.read_bytes())
        results(rec, photos[:6])  # other sizes in between must not change the second run
    assert csvs[0] == csvs[1] and csvs[0].count(b"\n") > 20


@pytest.mark.parametrize("size", [(512, 512), (350, 350), (640, 400), (97, 120)])
def test_yunet_on_onnxruntime_finds_opencvs_faces_where_opencv_computes_right(size):
    image = cv2.resize(astronaut(), size, interpolation=cv2.INTER_AREA)
    ours = YuNetDetector(score_threshold=0.3)
    net = cv2.FaceDetectorYN.create(str(ours.model_path), "", size, 0.3, 0.3, 5000)
    faces = net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1]
    found = ours._find(image)
    assert len(found) == len(faces) >= 1
    for mine, theirs in zip(found, faces, strict=True):
        assert mine == pytest.approx([*theirs[:4], theirs[14]], abs=1e-4)
