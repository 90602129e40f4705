"""Video: tracking through crossings and absences, detection every K frames, smoothing, per-track
summaries, webcam recording without a window, Ctrl-C, the CLI. Videos are generated (real faces
from the bundled photo moving with known ground truth) and small, so the suite stays fast."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED
from typer.testing import CliRunner

from ferkit.cli.main import app
from ferkit.data.synthetic import CLASSES, draw_face
from ferkit.errors import FerkitError
from ferkit.inference import Recognizer
from ferkit.inference.moving_faces import (
    TruthBox,
    crossing_scene,
    moving_scene,
    render,
    static_scene,
    track_quality,
)
from ferkit.inference.video import (
    MIN_FACE_PX,
    DetectionSize,
    Smoother,
    Timeline,
    VideoOptions,
    VideoOutputs,
    process_video,
)

YUNET = next(iter(sorted((SHARED / "models").glob("face_detection_yunet*.onnx"))), None)
needs_yunet = pytest.mark.skipif(YUNET is None, reason="../shared/models has no YuNet model")
SIZE = (320, 240)
FPS = 15.0


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def tracked_boxes(rows: list[dict]) -> dict[int, list[tuple[int, tuple[int, int, int, int]]]]:
    out: dict[int, list] = {}
    for r in rows:
        out.setdefault(int(r["frame"]), []).append((int(r["track"]), tuple(int(r[k]) for k in "xywh")))
    return out


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    """The shipped default model (ONNX, no torch) with YuNet, without TTA (half the compute)."""
    if YUNET is None:
        pytest.skip("../shared/models has no YuNet model")
    r = Recognizer.load("default", yunet_model=YUNET)
    r.tta = "none"
    return r


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> tuple[Path, list[list[TruthBox]]]:
    """4 s at 15 fps: two faces cross (one hides the other), a third leaves for 1.6 s and returns."""
    path = tmp_path_factory.mktemp("video") / "crossing.avi"
    truth = render(path, crossing_scene(*SIZE, 60), 60, SIZE, FPS, fourcc="FFV1")
    return path, truth


@pytest.fixture(scope="module")
def crossing_run(rec, crossing, tmp_path_factory) -> tuple[Path, object]:
    """One run over the crossing video with every output, detecting every 3rd frame."""
    out = tmp_path_factory.mktemp("run")
    outputs = VideoOutputs(out / "f.csv", out / "s.json", out / "a.mp4", out / "p.png")
    summary = process_video(rec, crossing[0], VideoOptions(detect_every=3), outputs, progress=False)
    return out, summary


# --- tracking --------------------------------------------------------------------------------------


@needs_yunet
@pytest.mark.parametrize("detect_every", [1, 3])
def test_ids_stay_through_a_crossing_and_a_long_absence_gets_a_new_id(rec, crossing, tmp_path, detect_every):
    video, truth = crossing
    out = tmp_path / "f.csv"
    process_video(rec, video, VideoOptions(detect_every=detect_every), VideoOutputs(csv=out), progress=False)
    q = track_quality(truth, tracked_boxes(read_csv(out)))
    assert sorted(q.ids) == [0, 1, 2, 3]  # every appearance was tracked...
    assert all(len(ids) == 1 for ids in q.ids.values()), q.ids  # ...by one id through the crossing
    assert len(set().union(*q.ids.values())) == 4  # the returning person is a new track
    assert q.id_switches == 0 and q.mean_iou > 0.8
    assert q.false_positives <= 0.05 * q.matched  # boxes moved by the tracker may lag a fast face


@needs_yunet
def test_csv_has_a_track_column_and_marks_tracked_boxes(crossing_run):
    out, summary = crossing_run
    rows = read_csv(out / "f.csv")
    assert list(rows[0])[:9] == ["frame", "time_s", "track", "detected", "face", "x", "y", "w", "h"]
    assert list(rows[0])[9:] == [*Recognizer.load("default", yunet_model=YUNET).class_names, "label"]
    detected = {int(r["frame"]) for r in rows if r["detected"] == "1"}
    moved = {int(r["frame"]) for r in rows if r["detected"] == "0"}
    assert detected and all(f % 3 == 0 for f in detected) and all(f % 3 for f in moved)
    assert summary.tracks == 4 == len({r["track"] for r in rows}) and summary.faces == len(rows)
    for frame in {r["frame"] for r in rows}:  # within a frame: one row per track, largest face first
        faces = [r for r in rows if r["frame"] == frame]
        assert len({r["track"] for r in faces}) == len(faces)
        assert [int(r["face"]) for r in faces] == list(range(len(faces)))
        areas = [int(r["w"]) * int(r["h"]) for r in faces]
        assert areas == sorted(areas, reverse=True)


@needs_yunet
def test_summary_json_matches_the_csv(crossing_run, rec):
    out, summary = crossing_run
    rows = read_csv(out / "f.csv")
    doc = json.loads((out / "s.json").read_text())
    names = rec.class_names
    assert doc["class_names"] == names and doc["frames_processed"] == summary.frames_processed == 60
    assert doc["frame_step_s"] == pytest.approx(1 / FPS, abs=1e-6)
    assert [t["track"] for t in doc["tracks"]] == sorted({int(r["track"]) for r in rows})
    for t in doc["tracks"]:
        mine = [r for r in rows if int(r["track"]) == t["track"]]
        times = [float(r["time_s"]) for r in mine]
        labels = [r["label"] for r in mine]
        assert (t["frames"], t["first_s"], t["last_s"]) == (len(mine), min(times), max(times))
        mean = np.mean([[float(r[c]) for c in names] for r in mine], axis=0)
        assert list(t["mean_probabilities"].values()) == pytest.approx(mean, abs=1e-5)
        top = max(set(labels), key=labels.count)
        assert t["dominant"] == top and t["dominant_share"] == pytest.approx(
            labels.count(top) / len(mine), abs=1e-4
        )
        for name, stretch in t["longest"].items():  # longest run of consecutive rows with that label
            runs = [len(list(g)) for k, g in itertools.groupby(labels) if k == name]
            assert stretch["frames"] == max(runs, default=0)
            if stretch["frames"]:
                assert stretch["seconds"] == pytest.approx(
                    stretch["end_s"] - stretch["start_s"] + 1 / FPS, abs=1e-3
                )
    assert (out / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cap = cv2.VideoCapture(str(out / "a.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 60


@needs_yunet
def test_detect_every_k_equals_every_frame_detection_on_static_faces(rec, tmp_path):
    video = tmp_path / "static.avi"  # FFV1 is lossless: identical frames decode identically
    render(video, static_scene(*SIZE, 12), 12, SIZE, FPS, fourcc="FFV1")
    runs = {}
    for k in (1, 4):
        process_video(
            rec, video, VideoOptions(detect_every=k), VideoOutputs(csv=tmp_path / f"{k}.csv"), progress=False
        )
        runs[k] = [{c: v for c, v in r.items() if c != "detected"} for r in read_csv(tmp_path / f"{k}.csv")]
    assert len(runs[1]) == 24 and runs[4] == runs[1]


@needs_yunet
def test_smoothing_off_is_raw_and_on_is_a_per_track_moving_average(rec, crossing, crossing_run, tmp_path):
    names = rec.class_names
    raw_rows = read_csv(crossing_run[0] / "f.csv")
    assert all(r["label"] == max(names, key=lambda c: float(r[c])) for r in raw_rows)  # off: raw
    out = tmp_path / "smooth.csv"
    process_video(
        rec, crossing[0], VideoOptions(detect_every=3, smooth_s=0.5), VideoOutputs(csv=out), progress=False
    )
    rows = read_csv(out)
    assert list(rows[0])[-len(names) - 2 :] == ["raw_label", *(f"smooth_{c}" for c in names), "label"]
    assert [[r[c] for c in names] for r in rows] == [[r[c] for c in names] for r in raw_rows]  # raw kept
    smoother = Smoother(0.5)
    for r in rows:
        expect = smoother(int(r["track"]), int(r["frame"]) / FPS, np.array([float(r[c]) for c in names]))
        assert [float(r[f"smooth_{c}"]) for c in names] == pytest.approx(expect, abs=2e-6)
        assert r["label"] == names[int(np.argmax(expect))]
        assert r["raw_label"] == max(names, key=lambda c: float(r[c]))
    first = {}
    for r in rows:  # a track's first frame is its own average; later ones lag behind the raw values
        first.setdefault(r["track"], r)
    assert all(r[f"smooth_{names[0]}"] == r[names[0]] for r in first.values())
    assert any(r[f"smooth_{names[0]}"] != r[names[0]] for r in rows)


def test_detection_uses_the_small_copy_only_while_every_face_is_large_there():
    sizer = DetectionSize(320, probe_every=4)
    shape = (480, 640, 3)  # 320 px copy: half size
    assert sizer.next(shape) is None  # the first detection looks at the full frame
    sizer.seen([120, 2 * MIN_FACE_PX])
    assert [sizer.next(shape) for _ in range(4)] == [320, 320, 320, None]  # a full-frame probe
    sizer.seen([120, 2 * MIN_FACE_PX - 1])  # one face would be too small in the copy
    assert sizer.next(shape) is None
    sizer.seen([])
    assert sizer.next(shape) == 320
    assert DetectionSize(320, 4).next((240, 320, 3)) is None and DetectionSize(0, 4).next(shape) is None


@needs_yunet
def test_small_faces_are_found_with_the_default_detection_size(rec, tmp_path):
    video = tmp_path / "small.avi"
    truth = render(video, moving_scene(640, 480, 8, 3, face_height=48), 8, (640, 480), 30.0, fourcc="FFV1")
    process_video(rec, video, VideoOptions(), VideoOutputs(csv=tmp_path / "f.csv"), progress=False)
    q = track_quality(truth, tracked_boxes(read_csv(tmp_path / "f.csv")))
    assert q.misses == 0 and q.matched == 24 and len(set().union(*q.ids.values())) == 3


def test_smoother_weights_do_not_depend_on_the_frame_rate():
    a, b = Smoother(1.0), Smoother(1.0)
    one, zero = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    a(1, 0.0, one), b(1, 0.0, one)
    for i in range(1, 11):  # 1 s of frames at 10 fps vs one frame after 1 s
        got = a(1, i / 10, zero)
    assert got == pytest.approx(b(1, 1.0, zero)) and got[0] == pytest.approx(np.exp(-1))


# --- webcam, duration, Ctrl-C ----------------------------------------------------------------------


class FakeCamera:
    """Stands in for cv2.VideoCapture(0): the frames of a video, again and again, at about 50 fps."""

    def __init__(self, video: Path):
        cap = cv2.VideoCapture(str(video))
        self.frames = []
        while (got := cap.read())[0]:
            self.frames.append(got[1])
        self.i = 0

    def isOpened(self) -> bool:
        return True

    def read(self):
        time.sleep(0.02)
        self.i += 1
        return True, self.frames[self.i % len(self.frames)]

    def grab(self) -> bool:
        return self.read()[0]

    def get(self, prop) -> float:
        return 0.0

    def release(self) -> None:
        pass


@needs_yunet
def test_webcam_records_without_a_window_for_a_duration(rec, crossing, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    camera = FakeCamera(crossing[0])
    monkeypatch.setattr(cv2, "VideoCapture", lambda index: camera)
    args = ["video", "--webcam", "0", "--no-display", "--duration", "0.6", "--yunet-model", str(YUNET),
            "--tta", "none", "--csv", str(tmp_path / "cam.csv"), "--summary",
            str(tmp_path / "cam.json")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = read_csv(tmp_path / "cam.csv")
    assert rows and all(0 <= float(r["time_s"]) < 0.6 for r in rows)
    doc = json.loads((tmp_path / "cam.json").read_text())
    assert doc["source"] == "webcam 0" and sum(t["frames"] for t in doc["tracks"]) == len(rows)
    assert not list(tmp_path.glob(".*tmp*"))


@needs_yunet
def test_ctrl_c_stops_and_still_writes_every_output_whole(tmp_path):
    video = tmp_path / "long.avi"
    render(video, crossing_scene(*SIZE, 600), 600, SIZE, FPS, fourcc="FFV1")
    outs = {"--csv": tmp_path / "f.csv", "--summary": tmp_path / "s.csv", "--annotate": tmp_path / "a.mp4"}
    cmd = [sys.executable, "-m", "ferkit.cli.main", "video", str(video), "--yunet-model", str(YUNET),
           "--tta", "none", *(str(x) for kv in outs.items() for x in kv)]  # fmt: skip
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (tmp_path / ".a.tmp.mp4").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the annotated video's temporary file appears with the first processed frame
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    processed = int(stdout.split("processed ")[1].split(" ")[0])
    assert 0 < processed < 600  # stopped early...
    rows = read_csv(outs["--csv"])  # ...and every output is complete and consistent
    assert len({r["frame"] for r in rows}) <= processed and rows
    tracks = read_csv(outs["--summary"])
    assert sum(int(t["frames"]) for t in tracks) == len(rows)
    assert int(cv2.VideoCapture(str(outs["--annotate"])).get(cv2.CAP_PROP_FRAME_COUNT)) == processed
    assert not list(tmp_path.glob(".*tmp*"))


# --- errors and the CLI ----------------------------------------------------------------------------


def test_cli_video_needs_a_file_or_a_webcam_and_checks_options_first(tmp_path, monkeypatch):
    res = CliRunner().invoke(app, ["video"])
    assert "a video is needed: give either a video file or --webcam N" in str(res.exception)
    res = CliRunner().invoke(app, ["video", "v.mp4", "--webcam", "0"])
    assert "not both" in str(res.exception)
    res = CliRunner().invoke(app, ["video", "v.mp4", "--summary", str(tmp_path / "s.txt")])
    assert "--summary must be a .json or .csv file" in str(res.exception)
    res = CliRunner().invoke(app, ["video", "v.mp4", "--detect-every", "0"])
    assert "--detect-every must be at least 1" in str(res.exception)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: pytest.fail("camera opened"))
    res = CliRunner().invoke(app, ["video", "--webcam", "0"])
    assert "needs a display" in str(res.exception) and "--no-display" in str(res.exception)
    real = importlib.util.find_spec
    monkeypatch.setattr("ferkit.extras.find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a))
    res = CliRunner().invoke(app, ["video", "v.mp4", "--plot", str(tmp_path / "p.png")])
    assert (
        "ferkit video --plot needs the training extra: pip install 'ferkit[train]' (missing: matplotlib)"
        in str(res.exception)
    )


def write_video(path: Path, frames: int = 30, fps: float = 10.0) -> Path:
    """A 320x240 clip of one synthetic face (upscaled 48 → 160 px) drifting over a flat background."""
    rng = np.random.default_rng(0)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (320, 240))
    for i in range(frames):
        frame = np.full((240, 320, 3), 90, np.uint8)
        face = cv2.resize(draw_face(CLASSES[i % len(CLASSES)], rng), (160, 160))
        frame[40:200, 60 + 2 * i : 220 + 2 * i] = face[..., None]
        out.write(frame)
    out.release()
    return path


@pytest.fixture
def torch_rec(tiny_run) -> Recognizer:
    return Recognizer.from_run(tiny_run, detector="none")


@pytest.mark.parametrize("every", [1, 4])
def test_video_csv_has_a_row_per_processed_frame_with_timestamps(torch_rec, tmp_path, every):
    video = write_video(tmp_path / "clip.mp4", frames=30, fps=10.0)
    opts = VideoOptions(every=every)
    summary = process_video(torch_rec, video, opts, VideoOutputs(csv=tmp_path / "out.csv"), progress=False)
    rows = read_csv(tmp_path / "out.csv")
    expected = list(range(0, 30, every))
    assert (summary.frames_read, summary.frames_processed, summary.faces, summary.tracks) == (
        30,
        len(expected),
        len(expected),
        1,
    )
    assert list(rows[0]) == [
        "frame",
        "time_s",
        "track",
        "detected",
        "face",
        "x",
        "y",
        "w",
        "h",
        *CLASSES,
        "label",
    ]
    assert [int(r["frame"]) for r in rows] == expected
    assert [float(r["time_s"]) for r in rows] == pytest.approx([f / 10.0 for f in expected], abs=1e-3)
    assert all(
        r["face"] == "0"
        and r["track"] == "1"
        and (r["w"], r["h"]) == ("320", "240")
        and r["label"] in CLASSES
        for r in rows
    )
    probs = np.array([[float(r[c]) for c in CLASSES] for r in rows])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-4)


def test_video_errors_name_the_file(torch_rec, tmp_path):
    with pytest.raises(FerkitError, match=r"missing\.mp4: video file not found"):
        process_video(torch_rec, tmp_path / "missing.mp4", progress=False)
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(FerkitError, match=r"notes\.mp4: (cannot open|no frame)"):
        process_video(
            torch_rec, tmp_path / "notes.mp4", outputs=VideoOutputs(csv=tmp_path / "o.csv"), progress=False
        )
    assert not (tmp_path / "o.csv").exists() and not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(FerkitError, match="--every must be at least 1"):
        process_video(
            torch_rec, write_video(tmp_path / "v.mp4", frames=2), VideoOptions(every=0), progress=False
        )


def test_timeline_memory_is_bounded_and_gaps_break_the_line():
    tl = Timeline(n_classes=2, max_bins=64, width_s=0.1)
    for i in range(5000):  # 500 s of faces at 10 per second...
        tl.add(i / 10, np.array([0.25, 0.75]))
    tl.add(900.0, np.array([1.0, 0.0]))  # ...then nothing until one face at 900 s
    assert tl.sums.shape == (64, 2) and tl.width > 900 / 64
    times, means = tl.series(gap_s=60.0)
    assert np.isnan(times).sum() == 1 and times[-1] == pytest.approx(900.0)
    assert np.allclose(means[:-2], [0.25, 0.75]) and np.allclose(means[-1], [1.0, 0.0])


def test_webcam_window_refuses_without_display_before_opening_a_camera(torch_rec, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *a: pytest.fail("camera opened"))
    with pytest.raises(FerkitError, match="webcam mode needs a display"):
        process_video(torch_rec, 0, show=True)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("ferkit.inference.video.opencv_gui", lambda: False)  # as opencv-python-headless
    with pytest.raises(FerkitError, match="OpenCV build with a GUI"):
        process_video(torch_rec, 0, show=True)


def test_cli_video_writes_csv_summary_plot_and_annotated_video(tiny_run, tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=12, fps=6.0)
    args = ["video", str(video), "--model", str(tiny_run), "--detector", "none", "--every", "3",
            "--csv", str(tmp_path / "v.csv"), "--plot", str(tmp_path / "v.png"),
            "--summary", str(tmp_path / "s.csv"), "--annotate", str(tmp_path / "v.mp4")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "read 12 frames, processed 4 (every 3), 4 faces in 1 tracks" in res.output
    assert "time: decode" in res.output
    assert [r["time_s"] for r in read_csv(tmp_path / "v.csv")] == ["0.000", "0.500", "1.000", "1.500"]
    (track,) = read_csv(tmp_path / "s.csv")
    assert (track["track"], track["frames"], track["first_s"], track["last_s"]) == ("1", "4", "0.0", "1.5")
    assert list(track)[:6] == ["track", "first_s", "last_s", "frames", "dominant", "dominant_share"]
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(2.0)
    ok, frame = cap.read()
    assert ok and frame.shape == (240, 320, 3)


def test_tracker_keeps_ids_through_gaps_and_needs_no_scipy(monkeypatch):
    """Two faces moving apart, detected every 3rd frame; one is missed for a while, then for longer
    than the gap. The tracker is NumPy only: SciPy and norfair are not importable here."""
    from ferkit.inference.detect import Detection
    from ferkit.inference.video import FaceTracker

    for module in ("scipy", "norfair"):
        monkeypatch.setitem(sys.modules, module, None)
    tracker = FaceTracker(max_gap=6, detect_every=3)
    ids_a, ids_b, predicted = set(), set(), []
    for f in range(60):
        a, b = Detection((10 + 2 * f, 50, 60, 60), 0.9), Detection((300 - 2 * f, 150, 40, 40), 0.9)
        b_visible = f != 12 and f < 30  # a short miss (within the gap), then gone for good
        dets = ([a] + [b] * b_visible) if f % 3 == 0 else None
        found, ended = tracker.update(dets, (640, 480))
        ids_a.update(t for t, d, _ in found if d.box[3] == 60)
        ids_b.update(t for t, d, _ in found if d.box[3] == 40)
        predicted += [d.box[0] - (10 + 2 * f) for _, d, detected in found if not detected and d.box[3] == 60]
    assert ids_a == {1} and ids_b == {2}  # one id each, through the short miss
    # between detections the box moves with the face (a box left in place would be 2-4 px behind)
    assert len(predicted) == 40 and all(abs(e) <= 1 for e in predicted[20:])
    assert ended == [] and tracker.update(None, (640, 480))[0][0][0] == 1
