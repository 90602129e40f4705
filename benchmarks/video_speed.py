"""`ferkit video` end to end: frames/s on generated 640x480 videos, and tracking quality.

    .venv/bin/python benchmarks/video_speed.py                      # shipped default (+ fast if shipped)
    .venv/bin/python benchmarks/video_speed.py --model runs/x.onnx  # any model Recognizer.load takes
    .venv/bin/python benchmarks/video_speed.py --smoke              # tiny: checks that it runs

**Speed.** Videos: 640x480, 30 fps, mp4v, real faces from the bundled photo moving over a textured
background (`ferkit.inference.moving_faces`), one with 1 face and one with 3. Each row is the whole
`process_video` (decode, YuNet, tracking, crops, classifier on every frame, CSV and summary written)
as `ferkit video` runs it, timed by the pipeline itself (model loading excluded). Rows:
``every-frame`` = YuNet on every frame at full resolution (the work `ferkit video` did before
tracking), ``default`` = `--detect-every` / `--detect-size` defaults; each with `--tta none` and
`flip`, for each model. ``fer`` = the `fer` package's per-frame loop (`detect_emotions` on every
frame: Haar cascade + its TFLite classifier) in its own venv (benchmarks/peer_fer_setup.sh), on the
same video, timed inside its process (TensorFlow start-up excluded). Rows run in interleaved rounds
(the order rotates each round); the table gives the median frames/s, the ratio to the every-frame
row of the same model and TTA, and the load average before and after.

**Tracking quality** (deterministic, no timing): ID switches, fragmentations, misses, false
positives and mean box IoU against the generated ground truth (`moving_faces.track_quality`), for
several `--detect-every` and `--detect-size` values, on a video where 2 faces cross (one hides the
other) and a third leaves for 2 s and comes back (a new id is then correct), and on 3 small faces
(48 px tall), 150 frames each.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script

from ferkit.errors import FerkitError
from ferkit.inference import Recognizer
from ferkit.inference.moving_faces import crossing_scene, moving_scene, render, track_quality
from ferkit.inference.video import (
    DEFAULT_DETECT_EVERY,
    DEFAULT_DETECT_SIZE,
    STAGES,
    VideoOptions,
    VideoOutputs,
    process_video,
)

ROOT = Path(__file__).resolve().parents[1]
FER_WORKER = Path(__file__).resolve().with_name("video_fer_worker.py")
SIZE = (640, 480)
FPS = 30.0


def make_videos(folder: Path, frames: int) -> dict[str, tuple[Path, list]]:
    """The speed videos (1 and 3 faces) and the tracking-quality videos, with their ground truth."""
    specs = {
        "1 face": moving_scene(*SIZE, frames, 1),
        "3 faces": moving_scene(*SIZE, frames, 3),
        "crossing": crossing_scene(*SIZE, 150),
        "3 small faces": moving_scene(*SIZE, 150, 3, face_height=48),
    }
    out = {}
    for name, scene in specs.items():
        n = frames if name in ("1 face", "3 faces") else 150
        path = folder / f"{name.replace(' ', '_')}.mp4"
        out[name] = (path, render(path, scene, n, SIZE, FPS))
    return out


def load(model: str, tta: str, yunet: str | None) -> Recognizer:
    rec = Recognizer.load(model, yunet_model=yunet)
    rec.tta = tta
    return rec


def run_ferkit(rec: Recognizer, video: Path, opts: VideoOptions, folder: Path) -> dict:
    outputs = VideoOutputs(csv=folder / "frames.csv", summary=folder / "summary.json")
    s = process_video(rec, video, opts, outputs, progress=False)
    fps = s.frames_processed / s.seconds
    return {"fps": fps, "faces": s.faces, "frames": s.frames_processed, "stages": s.stage_seconds}


def run_fer(venv: Path, video: Path, frames: int) -> dict:
    python = venv / "bin" / "python"
    if not python.is_file():
        return {"error": f"no fer venv at {venv} (create it: bash benchmarks/peer_fer_setup.sh)"}
    cmd = [str(python), str(FER_WORKER), "--video", str(video), "--frames", str(frames)]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": f"fer worker failed (exit {proc.returncode}): {proc.stderr[-1500:]}"}
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"fps": got["frames"] / got["seconds"], "faces": got["faces"], "frames": got["frames"]}


def speed(args: argparse.Namespace, videos: dict, folder: Path) -> None:
    recs = {}
    for model in args.models:
        for tta in ("none", "flip"):
            try:
                recs[(model, tta)] = load(model, tta, args.yunet_model)
            except FerkitError as exc:
                print(f"skipped model {model!r}: {exc}")
                break
    modes = {
        "every-frame": VideoOptions(detect_every=1, detect_size=0),
        "every-3-full": VideoOptions(detect_every=3, detect_size=0),
        "default": VideoOptions(detect_every=DEFAULT_DETECT_EVERY, detect_size=DEFAULT_DETECT_SIZE),
    }
    rows = [(m, t, mode) for (m, t) in recs for mode in modes if t == "none" or mode != "every-3-full"]
    names = ["1 face", "3 faces"]
    results: dict[tuple, list[dict]] = {}
    loads = [load_average()]
    for r in range(args.rounds):
        order = rows[r % len(rows) :] + rows[: r % len(rows)]
        for name in names:
            for model, tta, mode in order:
                got = run_ferkit(recs[(model, tta)], videos[name][0], modes[mode], folder)
                results.setdefault((name, model, tta, mode), []).append(got)
            if args.fer_venv:
                results.setdefault((name, "fer", "-", "fer"), []).append(
                    run_fer(args.fer_venv, videos[name][0], args.fer_frames)
                )
        loads.append(load_average())
        print(f"round {r + 1}/{args.rounds} done, load average {loads[-1]}", file=sys.stderr)
    print(f"\n## Speed: frames/s end to end, 640x480, 30 fps, {args.frames} frames ({args.rounds} rounds)\n")
    print(f"load average (1/5/15 min) before and after each round: {' | '.join(loads)}\n")
    print("| video | model | TTA | detection | median frames/s | × every-frame | × fer | faces/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        fer = results.get((name, "fer", "-", "fer"), [])
        fer_fps = statistics.median(g["fps"] for g in fer) if fer and "error" not in fer[0] else None
        for model, tta, mode in [*rows, ("fer", "-", "fer")]:
            got = results.get((name, model, tta, mode))
            if not got:
                continue
            if "error" in got[0]:
                print(f"| {name} | {model} | | | {got[0]['error'][:200]} | | | |")
                continue
            fps = statistics.median(g["fps"] for g in got)
            base = results.get((name, model, tta, "every-frame"))
            ratio = f"{fps / statistics.median(g['fps'] for g in base):.2f}" if base and mode != "fer" else ""
            vs_fer = f"{fps / fer_fps:.2f}" if fer_fps else ""
            label = {"every-frame": "every frame, full size", "every-3-full": "every 3, full size",
                     "fer": "Haar, every frame"}.get(mode, f"default: every {DEFAULT_DETECT_EVERY}, "
                                                          f"{DEFAULT_DETECT_SIZE or 'full'} px")  # fmt: skip
            print(f"| {name} | {model} | {tta} | {label} | {fps:.1f} | {ratio} | {vs_fer} | "
                  f"{got[0]['faces'] / got[0]['frames']:.2f} |")  # fmt: skip
    print("\n## Where the time goes (share of the pipeline's wall time, all rounds)\n")
    print("| video | model | TTA | detection | " + " | ".join(STAGES) + " |")
    print("|---|---|---|---|" + "---|" * len(STAGES))
    for name in names:
        for model, tta, mode in rows:
            got = results[(name, model, tta, mode)]
            total = {s: sum(g["stages"][s] for g in got) for s in STAGES}
            all_s = sum(total.values())
            print(f"| {name} | {model} | {tta} | {mode} | "
                  + " | ".join(f"{100 * total[s] / all_s:.0f} %" for s in STAGES) + " |")  # fmt: skip


def quality(args: argparse.Namespace, videos: dict, folder: Path) -> None:
    rec = load(args.models[0], "none", args.yunet_model)
    print("\n## Tracking quality against the generated ground truth (IoU >= 0.5)\n")
    print("| video | --detect-every | --detect-size | ids per appearance | ID switches | fragmentations "
          "| misses | false positives | matched | mean IoU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in ("crossing", "3 small faces"):
        path, truth = videos[name]
        for size in args.sizes:
            for k in args.detect_every:
                out = folder / "q.csv"
                process_video(rec, path, VideoOptions(detect_every=k, detect_size=size),
                              VideoOutputs(csv=out), progress=False)  # fmt: skip
                with open(out, newline="") as fh:
                    tracked: dict[int, list] = {}
                    for row in csv.DictReader(fh):
                        box = tuple(int(row[c]) for c in "xywh")
                        tracked.setdefault(int(row["frame"]), []).append((int(row["track"]), box))
                q = track_quality(truth, tracked)
                ids = " ".join(f"{a}:{sorted(v)}" for a, v in sorted(q.ids.items())).replace(" ", "")
                print(f"| {name} | {k} | {size or 'full'} | {ids} | {q.id_switches} | {q.fragmentations} | "
                      f"{q.misses} | {q.false_positives} | {q.matched} | {q.mean_iou:.3f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", dest="models", nargs="+", default=["default", "fast"],
                        help="models for Recognizer.load (default: shipped default and fast)")  # fmt: skip
    parser.add_argument("--yunet-model", default=None, help="YuNet .onnx (else the usual lookup)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300, help="frames of each speed video")
    parser.add_argument("--fer-venv", type=Path, default=ROOT / ".venv-fer", help="'' to skip fer")
    parser.add_argument("--fer-frames", type=int, default=300, help="frames fer processes per run")
    parser.add_argument("--detect-every", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 320], help="--detect-size values")
    parser.add_argument("--skip", choices=["speed", "quality"], help="leave one part out")
    parser.add_argument("--smoke", action="store_true", help="60 frames, 1 round, K in 1 3, full and 320")
    args = parser.parse_args()
    if args.smoke:
        args.frames, args.rounds, args.fer_frames, args.detect_every, args.sizes = 60, 1, 30, [1, 3], [0, 320]
    args.fer_venv = args.fer_venv if str(args.fer_venv) else None
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# ferkit video benchmark, {stamp}\n\n{machine()}; load average at start {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_videos(Path(tmp), args.frames)
        if args.skip != "speed":
            speed(args, videos, Path(tmp))
        if args.skip != "quality":
            quality(args, videos, Path(tmp))
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
