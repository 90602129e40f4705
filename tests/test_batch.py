"""`ferkit batch`: the Parquet rows, resume after a kill or Ctrl-C, errors as rows, the Ray engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

from batch_fixtures import copies, make_collection  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ferkit import read_results  # noqa: E402
from ferkit.batch import BatchOptions, run_batch  # noqa: E402
from ferkit.batch.job import part_files  # noqa: E402
from ferkit.cli.main import app  # noqa: E402
from ferkit.errors import FerkitError  # noqa: E402
from ferkit.extras import require_extra  # noqa: E402
from ferkit.inference import Recognizer  # noqa: E402

FAST = BatchOptions(model="fast", part_size=2)
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    return make_collection(tmp_path_factory.mktemp("collection"))


@pytest.fixture(scope="module")
def local_job(collection, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("job") / "out"
    run_batch([str(collection)], out, FAST, progress=False)
    return out


def test_rows_say_face_no_face_or_error_for_every_source(collection, local_job):
    df = read_results(local_job)
    by_source = df.groupby("source")["status"].agg(set)
    photos = collection / "photos"
    assert by_source[str(photos / "blank.png")] == {"no_face"}
    assert by_source[str(photos / "broken.jpg")] == {"error"}
    assert all(by_source[str(photos / f"face{i}.jpg")] == {"face"} for i in range(4))
    broken = df[df.source == str(photos / "broken.jpg")].iloc[0]
    assert "broken.jpg" in broken.error and pd.isna(broken.label)
    classes = Recognizer.load("fast").class_names
    faces = df[df.status == "face"]
    assert (faces[classes].sum(axis=1) - 1).abs().max() < 1e-4
    assert (faces.label == faces[classes].idxmax(axis=1)).all()
    assert df.model.nunique() == 1 and df.model.iloc[0].startswith("fast@")
    record = json.loads((local_job / "job.json").read_text())
    assert record["status"] == "complete"
    assert record["counts"] | {"rows": 0} == {"sources": 7, "skipped": 0, "done": 7, "rows": 0,
                                              "faces": len(faces), "no_face": 1, "errors": 1}  # fmt: skip


def test_video_rows_have_frame_time_and_track(collection, tmp_path):
    run_batch([str(collection / "clip.avi")], tmp_path / "v", BatchOptions(model="fast", video_every=3),
              progress=False)  # fmt: skip
    df = read_results(tmp_path / "v")
    assert set(df.status) == {"face"}
    assert sorted(df.frame.unique()) == [0, 3, 6, 9]
    assert df.time_s.tolist() == pytest.approx((df.frame / 10.0).tolist())
    assert df.track.nunique() == 2 and (df.groupby("frame").size() == 2).all()


def test_a_rerun_resumes_and_other_settings_are_refused(collection, local_job, tmp_path):
    before = sorted(p.name for p in part_files(local_job))
    record = run_batch([str(collection)], local_job, FAST, progress=False)
    assert (record.counts.skipped, record.counts.done) == (7, 0)
    assert sorted(p.name for p in part_files(local_job)) == before
    with pytest.raises(FerkitError, match="other settings"):
        run_batch([str(collection)], local_job, BatchOptions(model="fast", tta="flip"), progress=False)
    fresh = tmp_path / "copy"
    run_batch([str(collection / "photos")], fresh, FAST, progress=False)
    record = run_batch([str(collection)], fresh, FAST, progress=False, overwrite=False)
    assert (record.counts.skipped, record.counts.done) == (6, 1)  # only the video was left
    record = run_batch([str(collection)], fresh, FAST, progress=False, overwrite=True)
    assert (record.counts.skipped, record.counts.done) == (0, 7)


def test_manifest_columns_are_carried_and_bad_manifests_named(collection, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.jpg").write_bytes((collection / "photos" / "face0.jpg").read_bytes())
    manifest = tmp_path / "list.csv"  # relative paths are taken from the manifest's folder
    manifest.write_text(f"path,participant\nsub/f.jpg,7\n{tmp_path}/nothing.jpg,8\n")
    run_batch([str(manifest)], tmp_path / "o", FAST, progress=False)
    df = read_results(tmp_path / "o").set_index("source")
    assert df.loc[f"{tmp_path}/sub/f.jpg", ["participant", "status"]].tolist() == [7, "face"]
    assert df.loc[f"{tmp_path}/nothing.jpg", ["participant", "status"]].tolist() == [8, "error"]
    (tmp_path / "bad.csv").write_text("file\nx.jpg\n")
    with pytest.raises(FerkitError, match=r"bad.csv: a manifest needs a 'path' column"):
        run_batch([str(tmp_path / "bad.csv")], tmp_path / "p", FAST, progress=False)


def _start(inputs: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ferkit.cli.main", "batch", str(inputs), "--out", str(out),
           "--model", "fast", "--part-size", "1", "--threads", "1", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_parts(job: subprocess.Popen, out: Path, n: int) -> int:
    while job.poll() is None and len(part_files(out)) < n:
        time.sleep(0.05)
    return len(part_files(out))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_or_interrupted_job_resumes_with_every_source_once(tmp_path, sig):
    photos = copies(tmp_path / "many", 200)  # enough that an idle machine cannot finish before the signal
    out = tmp_path / "out"
    job = _start(photos, out)
    seen = _wait_for_parts(job, out, 3)
    job.send_signal(sig)
    job.communicate(timeout=60)
    assert job.returncode == (-9 if sig == signal.SIGKILL else 130)
    assert seen >= 3 and len(part_files(out)) < 200, "the job ended before it was stopped"
    if sig == signal.SIGINT:
        assert json.loads((out / "job.json").read_text())["status"] == "interrupted"
    record = run_batch([str(photos)], out, BatchOptions(model="fast", part_size=1), progress=False)
    assert record.counts.skipped >= 3 and record.counts.skipped + record.counts.done == 200
    df = read_results(out)
    assert sorted(df.source) == sorted(str(p) for p in photos.iterdir())  # each once, one face each


def test_image_result_to_pandas_has_the_batch_columns(collection):
    rec = Recognizer.load("fast")
    results = list(rec.predict_files([collection / "photos"]))
    face = next(r for r in results if r.source.endswith("face0.jpg"))
    frame = face.to_pandas()
    assert list(frame.columns[:5]) == ["source", "frame", "time_s", "track", "face"]
    assert frame.label.tolist() == [f.label for f in face.faces] and frame.angry.notna().all()
    blank = next(r for r in results if r.source.endswith("blank.png")).to_pandas()
    assert blank.status.tolist() == ["no_face"]


def test_cli_batch_and_its_errors(collection, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["batch", str(collection / "photos"), "--out", str(tmp_path / "c"),
                              "--model", "fast", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "6 sources (0 already done)" in res.output and "1 errors" in res.output
    res = runner.invoke(app, ["batch", str(tmp_path / "nope"), "--out", str(tmp_path / "d")])
    assert res.exit_code != 0 and "no such file or folder" in str(res.exception)
    with pytest.raises(FerkitError, match="--address joins a Ray cluster"):
        run_batch([str(collection)], tmp_path / "e", FAST, address="auto")


def test_a_missing_extra_names_the_install():
    with pytest.raises(FerkitError, match=r"pip install 'ferkit\[ray\]' \(missing: not-here\)"):
        require_extra("--engine ray", "ray", {"ferkit_not_here": "not-here"})


def test_ray_gives_the_local_engine_rows(collection, local_job, tmp_path):
    pytest.importorskip("ray")
    record = run_batch([str(collection)], tmp_path / "ray", FAST, engine="ray", actors=2, progress=False)
    assert record.engine_info["actors"] == 2 and record.counts.done == 7
    ray_rows = read_results(tmp_path / "ray")
    pd.testing.assert_frame_equal(ray_rows, read_results(local_job), check_exact=True)


def test_sources_keep_the_first_of_each_path_in_input_order(collection):
    from ferkit.batch.sources import expand_sources

    photos = collection / "photos"
    found = expand_sources([str(photos / "face1.jpg"), str(photos), f"{photos}/../photos/face1.jpg"])
    paths = [Path(s.path).name for s in found.sources]
    assert paths == ["face1.jpg", "blank.png", "broken.jpg", "face0.jpg", "face2.jpg", "face3.jpg"]
    assert len({s.id for s in found.sources}) == 6
