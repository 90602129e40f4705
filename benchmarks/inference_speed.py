"""CPU inference speed: backends, static int8, onnxruntime thread/spinning settings, video pipeline.

Models: ``--run RUN [RUN ...]`` (one model, several: their ensemble) is exported here with
ferkit.export.export_onnx as fp32, fp16-stored and static int8 (QDQ, calibrated on the training
split of ``--data``, its accuracy checked on ``--split``) and also run as torch eager; ``--onnx
FILE ...`` adds ferkit ONNX files as they are (e.g. the shipped ``default``/``fast`` models, which
are the default when neither option is given).

Classifier rows: faces/s on the same prepared real faces (FER2013 ``--split``) at batch 1 and 256
(``--batches``), preprocessing outside the timing, no TTA. Every ONNX file in ``--tune`` runs under
five onnxruntime session settings: ``default`` (what ferkit uses: onnxruntime's own, one intra-op
thread per core, spinning on), 1 or 2 intra-op threads, each with spinning on or off (session
config ``session.intra_op.allow_spinning``). All contenders of one batch size are measured in
interleaved rounds (rotating order), the load average printed after each round; the median round
is reported, with the ratio to the file's ``default`` setting, and the fastest setting is named.
From batch 64 on (``--fresh-from``) each timed call gets a freshly built, warmed-up session
(untimed): every session keeps the memory arena of its largest batch (~1 GB for an ensemble at
batch 256), and a dozen of them exhausted this machine's memory.
Video rows: end-to-end frames/s of ``process_video`` (decode, detect, crop, classify, CSV) on a
generated 640x480 clip with one real face (scikit-image's astronaut, panning), default settings,
also interleaved.

    .venv/bin/python benchmarks/inference_speed.py                      # shipped default (+ fast)
    .venv/bin/python benchmarks/inference_speed.py --run /work/runs/fast_mnv2_64
    .venv/bin/python benchmarks/inference_speed.py --onnx a.onnx b.onnx --batches 1 256 --frames 0
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script
from rounds import interleaved, per_second

from ferkit.errors import FerkitError
from ferkit.export import export_onnx
from ferkit.inference import Recognizer, make_detector
from ferkit.inference.backends import OnnxBackend, TorchBackend
from ferkit.inference.recognizer import ASSETS
from ferkit.inference.video import VideoOutputs, process_video
from ferkit.models.factory import checkpoint_file
from ferkit.models.preprocess import Preprocessing, prepare

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013-dev.tar.gz"
SPIN = "session.intra_op.allow_spinning"
# name → (intra-op threads, spinning); None = onnxruntime's default (spinning on)
SETTINGS = {
    "default": (None, None),
    "1 thread": (1, True),
    "1 thread, no spin": (1, False),
    "2 threads": (2, True),
    "2 threads, no spin": (2, False),
}


def session_backend(path: Path, threads: int | None, spin: bool | None) -> OnnxBackend:
    """A ferkit ONNX file under explicit onnxruntime session options."""
    import onnxruntime as ort

    meta = OnnxBackend.from_file(path)  # class names and preprocessing from the file's metadata
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if spin is not None:
        options.add_session_config_entry(SPIN, "1" if spin else "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return OnnxBackend(session, meta.class_names, meta.preprocessing)


@dataclass
class Contender:
    """How to build one backend (a fresh session each call), and its preprocessing."""

    build: Callable[[], object]
    preprocessing: Preprocessing


def contenders(files: dict[str, Path], torch_backend: TorchBackend | None, tune: list[str] | None) -> dict:
    """The files in ``tune`` (None: all but fp16-stored exports) under every setting, the others
    under the default one, plus torch eager."""
    out: dict[str, Contender] = {}
    if torch_backend:
        out["torch eager"] = Contender(lambda: torch_backend, torch_backend.preprocessing)
    for label, path in files.items():
        tuned = label in tune if tune is not None else not label.endswith("fp16")
        pp = OnnxBackend.from_file(path).preprocessing
        for setting in list(SETTINGS) if tuned else ["default"]:
            out[f"{label} | {setting}"] = Contender(partial(session_backend, path, *SETTINGS[setting]), pp)
    return out


def classifier_rows(specs: dict[str, Contender], faces: np.ndarray, args: argparse.Namespace) -> list[dict]:
    """faces/s of every contender per batch size, all contenders interleaved.

    Below ``--fresh-from`` faces per batch every session is built once and kept; from there on each
    timed call gets a session built (and warmed up) just before it, untimed, and dropped after it:
    an onnxruntime session keeps the memory arena its largest batch needed (about 1 GB for the
    ensembles at batch 256), and a dozen of them exhausted this machine's memory.
    """
    inputs = {}
    for c in specs.values():
        pp = c.preprocessing
        inputs.setdefault((pp.input_size, pp.in_chans), prepare(faces, pp))
    rows, live = [], {}  # live: the sessions that exist now
    for batch in args.batches:
        n = args.faces_b1 if batch == 1 else max(batch, args.faces)
        fresh = batch >= args.fresh_from

        def call(name: str, batch: int = batch, n: int = n):
            pp = specs[name].preprocessing
            x = inputs[(pp.input_size, pp.in_chans)][:n]
            return lambda: [live[name].probabilities(x[i : i + batch]) for i in range(0, n, batch)]

        def build(name: str, batch: int = batch) -> None:
            live.clear()  # the previous contender's session (and its arena) goes first
            gc.collect()
            live[name] = specs[name].build()
            pp = specs[name].preprocessing
            live[name].probabilities(inputs[(pp.input_size, pp.in_chans)][:batch])  # warm-up

        if not fresh:
            live.update({name: c.build() for name, c in specs.items()})
        what = "a fresh session per call" if fresh else "kept sessions"
        print(f"batch {batch}: {n} faces per call, {len(specs)} contenders, {what}", flush=True)
        calls = {name: call(name) for name in specs}
        seconds = interleaved(
            calls, args.rounds, 0 if fresh else args.warmup, before=build if fresh else None
        )
        new = [
            {"backend": name, "batch": batch, "faces_per_s": per_second(n, s)} for name, s in seconds.items()
        ]
        print(markdown(new, [], ""), flush=True)
        rows += new
        live.clear()
    return rows


def write_clip(path: Path, frames: int, fps: float = 30.0) -> Path:
    """640x480 clip of the astronaut photo panning sideways (a real face YuNet and Haar both find)."""
    from skimage.data import astronaut

    base = cv2.cvtColor(cv2.resize(astronaut(), (640, 480)), cv2.COLOR_RGB2BGR)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for i in range(frames):
        out.write(np.roll(base, 2 * i - frames, axis=1))
    out.release()
    return path


def video_rows(backends: dict, clip: Path, detector, csv_dir: Path, rounds: int) -> list[dict]:
    """Frames/s of the video pipeline per backend, interleaved over ``rounds``."""
    summaries: dict[str, list] = {name: [] for name in backends}

    def call(name: str):
        rec = Recognizer(backends[name], detector)
        return lambda: summaries[name].append(
            process_video(rec, clip, outputs=VideoOutputs(csv=csv_dir / "video.csv"), progress=False)
        )

    interleaved({name: call(name) for name in backends}, rounds, warmup=0)
    rows = []
    for name, runs in summaries.items():
        fps = sorted(s.frames_processed / s.seconds for s in runs)
        label, first = name.removesuffix(" | default"), runs[0]
        rows.append(
            {
                "backend": label,
                "frames": first.frames_processed,
                "faces": first.faces,
                "fps": fps[len(fps) // 2],
            }
        )
    return rows


def detector_for(args: argparse.Namespace):
    """YuNet (the given file, else ferkit's bundled one), else Haar."""
    for candidate in (args.yunet_model, None):
        try:
            return make_detector("yunet", model_path=candidate)
        except FerkitError:
            continue
    return make_detector("haar")


def best_settings(rows: list[dict]) -> list[str]:
    """Per file and batch: the fastest setting and its ratio to the default setting."""
    lines = []
    speed = {(r["backend"], r["batch"]): r["faces_per_s"] for r in rows}
    for (name, batch), fps in speed.items():
        label, _, setting = name.partition(" | ")
        if setting != "default" or (f"{label} | 1 thread", batch) not in speed:
            continue
        options = {s: speed[(f"{label} | {s}", batch)] for s in SETTINGS}
        best = max(options, key=options.get)
        lines.append(
            f"{label}, batch {batch}: fastest '{best}' ({options[best]:.0f} faces/s, "
            f"{options[best] / fps:.2f}x default)"
        )
    return lines


def markdown(rows: list[dict], vrows: list[dict], detector: str) -> str:
    default = {
        (r["backend"].partition(" | ")[0], r["batch"]): r["faces_per_s"]
        for r in rows
        if r["backend"].endswith("| default")
    }
    lines = ["| model | session setting | batch | faces/s | x default setting |", "|---|---|---|---|---|"]
    for r in rows:
        label, _, setting = r["backend"].partition(" | ")
        ref = default.get((label, r["batch"]))
        ratio = f"{r['faces_per_s'] / ref:.2f}" if ref else "–"
        lines.append(f"| {label} | {setting or '–'} | {r['batch']} | {r['faces_per_s']:.1f} | {ratio} |")
    if vrows:
        lines += [
            "",
            f"| video pipeline (640x480, detector {detector}) | frames | faces | frames/s |",
            "|---|---|---|---|",
        ]
        lines += [f"| {r['backend']} | {r['frames']} | {r['faces']} | {r['fps']:.1f} |" for r in vrows]
    return "\n".join(lines)


def exported(runs: list[Path], args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Path], TorchBackend]:
    """fp32, fp16-stored and static int8 files of ``runs`` (private copies of the checkpoints: a run
    still training may replace best.pt between the loads), and the torch backend."""
    copies = []
    for i, run in enumerate(runs):
        source = checkpoint_file(run)
        if not source.is_file():
            sys.exit(f"{source}: no checkpoint here")
        copies.append(Path(shutil.copyfile(source, tmp / f"model{i}.pt")))
    files = {}
    for weights in ("fp32", "fp16", "int8"):
        out = tmp / f"{weights}.onnx"
        check = {"data": args.data, "split": args.split} if weights == "int8" else {}
        print("\n".join(export_onnx(copies, out, weights=weights, **check).lines()), flush=True)
        files[f"run {weights}"] = out
    return files, TorchBackend.from_checkpoint(copies)


def onnx_files(paths: list[str]) -> dict[str, Path]:
    """``default``/``fast`` → the shipped file; anything else a path, labelled by its stem."""
    files = {}
    for p in paths:
        path = ASSETS / f"{p}_model.onnx" if p in ("default", "fast") else Path(p)
        if not Path(str(path)).is_file():
            print(f"skipped {p}: {path} not found", flush=True)
            continue
        files[p if p in ("default", "fast") else Path(p).stem] = Path(str(path))
    return files


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, nargs="+", default=None, help="run dir(s) or .pt: exported here")
    p.add_argument("--onnx", nargs="+", default=None, help="ferkit .onnx files, or default / fast (shipped)")
    p.add_argument(
        "--tune", nargs="+", default=None,
        help="labels of the files to run under every thread/spinning setting (default: all but fp16 exports)",
    )  # fmt: skip
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FER2013 archive: faces, int8 calibration")
    p.add_argument("--split", default="test", help="split whose faces are timed and int8 is checked on")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 256], help="batch sizes (default 1 256)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per batch size (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per contender first")
    p.add_argument(
        "--fresh-from", type=int, default=64,
        help="from this batch size on, a fresh session (untimed build + warm-up) per timed call",
    )  # fmt: skip
    p.add_argument("--faces", type=int, default=512, help="faces per timed call at batch > 1")
    p.add_argument("--faces-b1", type=int, default=64, help="faces per timed call at batch 1")
    p.add_argument("--frames", type=int, default=150, help="frames of the generated clip (0: no video rows)")
    p.add_argument("--video-rounds", type=int, default=2, help="interleaved rounds of the video pipeline")
    p.add_argument("--yunet-model", type=Path, default=None, help="YuNet .onnx for the video rows")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import onnxruntime

    from ferkit.data import load_dataset

    load_before = load_average()
    print(f"load average (1/5/15 min) before: {load_before}", flush=True)
    faces = (
        load_dataset(args.data).split(args.split).images[: max(args.faces, max(args.batches), args.faces_b1)]
    )
    with tempfile.TemporaryDirectory(prefix="ferkit-bench-") as tmp:
        files, torch_backend = exported(args.run, args, Path(tmp)) if args.run else ({}, None)
        files |= onnx_files(args.onnx or ([] if args.run else ["default", "fast"]))
        if not files:
            sys.exit("nothing to measure: give --run or --onnx (no shipped model found)")
        specs = contenders(files, torch_backend, args.tune)
        rows = classifier_rows(specs, np.ascontiguousarray(faces), args)
        vrows, detector = [], detector_for(args)
        if args.frames:
            video = {
                name: c.build()
                for name, c in specs.items()
                if name == "torch eager" or name.endswith("| default")
            }
            clip = write_clip(Path(tmp) / "clip.mp4", args.frames)
            vrows = video_rows(video, clip, detector, Path(tmp), args.video_rounds)
    print(
        f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"onnxruntime {onnxruntime.__version__}; "
        f"files: {', '.join(f'{k} = {v.name}' for k, v in files.items())}; {len(faces)} faces of "
        f"{args.data.name} {args.split}/; {args.rounds} interleaved rounds per batch size (median), "
        f"{args.warmup} warm-up call(s); batch 1: {args.faces_b1} faces per call, larger: {args.faces}; "
        f"load average (1/5/15 min) {load_before} before, {load_average()} after\n"
    )
    print(markdown(rows, vrows, detector.name) + "\n\n" + "\n".join(best_settings(rows)))


if __name__ == "__main__":
    main()
