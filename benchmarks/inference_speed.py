"""CPU inference speed of one model through four backends, side by side, and of the video pipeline.

  torch eager  ferkit's TorchBackend (fp32, channels_last, glibc memory tuning)
  onnx fp32    the model exported by ferkit.export.export_onnx, run by onnxruntime
  onnx fp16    the same export with fp16-stored weights (--fp16: half the file, fp32 compute)
  onnx int8    the same export, dynamically quantized (--int8)

Classifier rows: faces/s on the same preprocessed synthetic face crops at batch 1 (64 calls of one
face) and batch 64 (one call), after warm-up; the backends are measured round-robin in every repeat
so a shared machine's drift hits all of them alike, in an order that rotates every repeat; the
median repeat is reported, with ratios to torch eager. Video rows: end-to-end frames/s of
``process_video`` (decode, detect, crop, classify, CSV) on a generated 640x480 clip with one real
face (scikit-image's astronaut, panning).

    .venv/bin/python benchmarks/inference_speed.py --run /work/runs/fer2013_cpu_lite0
    .venv/bin/python benchmarks/inference_speed.py --run RUN_A RUN_B     # their ensemble
    .venv/bin/python benchmarks/inference_speed.py             # the shipped default model, if any
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script

from ferkit.errors import FerkitError
from ferkit.export import export_onnx
from ferkit.export.onnx import sample_images
from ferkit.inference import Recognizer, make_detector
from ferkit.inference.backends import OnnxBackend, TorchBackend
from ferkit.inference.recognizer import ASSETS
from ferkit.inference.video import VideoOutputs, process_video
from ferkit.models.factory import checkpoint_file


def time_faces(backend, x: np.ndarray, batch: int) -> float:
    """Seconds to classify all of ``x`` in calls of ``batch`` faces."""
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        backend.probabilities(x[i : i + batch])
    return time.perf_counter() - start


def classifier_rows(backends: dict, x: np.ndarray, repeats: int, warmup: int) -> list[dict]:
    """Median faces/s per backend and batch size, measured round-robin in a rotating order, so no
    backend always runs right after the same other one."""
    rows = []
    for batch in (1, 64):
        times: dict[str, list[float]] = {name: [] for name in backends}
        for b in backends.values():
            for _ in range(warmup):
                time_faces(b, x[: max(batch, 8)], batch)
        names = list(backends)
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(time_faces(backends[name], x, batch))
        for name in backends:
            rows.append(
                {"backend": name, "batch": batch, "faces_per_s": len(x) / statistics.median(times[name])}
            )
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


def video_rows(backends: dict, clip: Path, detector, csv_dir: Path) -> list[dict]:
    rows = []
    for name, backend in backends.items():
        rec = Recognizer(backend, detector)
        s = process_video(rec, clip, outputs=VideoOutputs(csv=csv_dir / f"{name}.csv"), progress=False)
        rows.append({"backend": name, "frames": s.frames_processed, "faces": s.faces,
                     "fps": s.frames_processed / s.seconds})  # fmt: skip
    return rows


def detector_for(args: argparse.Namespace):
    """YuNet when its model file can be found (argument, env, cache, ../shared), else Haar."""
    shared = sorted((Path(__file__).resolve().parents[2] / "shared" / "models").glob("face_detection_yunet*"))
    for candidate in (args.yunet_model, None, *shared):
        try:
            return make_detector("yunet", model_path=candidate)
        except FerkitError:
            continue
    return make_detector("haar")


def markdown(rows: list[dict], vrows: list[dict], detector: str) -> str:
    torch_speed = {r["batch"]: r["faces_per_s"] for r in rows if r["backend"] == "torch eager"}
    lines = ["| backend | batch | faces/s | × torch eager |", "|---|---|---|---|"]
    for r in rows:
        ratio = r["faces_per_s"] / torch_speed[r["batch"]] if r["batch"] in torch_speed else float("nan")
        lines.append(f"| {r['backend']} | {r['batch']} | {r['faces_per_s']:.1f} | {ratio:.2f} |")
    lines += [
        "",
        f"| video pipeline (640x480, detector {detector}) | frames | faces | frames/s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['backend']} | {r['frames']} | {r['faces']} | {r['fps']:.1f} |" for r in vrows]
    return "\n".join(lines)


def resolve_models(runs: list[Path] | None) -> list[Path]:
    if runs:
        return runs
    shipped = ASSETS / "default_model.pt"
    if shipped.is_file():
        return [Path(str(shipped))]
    sys.exit("give --run RUN_DIR (or .pt files): no torch default model is shipped in this installation")


def snapshot(models: list[Path], tmp: Path) -> list[Path]:
    """Private copies of the checkpoints: a run still training may replace best.pt between the loads."""
    copies = []
    for i, model in enumerate(models):
        source = checkpoint_file(model)
        if not source.is_file():
            sys.exit(f"{source}: no checkpoint here")
        copies.append(Path(shutil.copyfile(source, tmp / f"model{i}.pt")))
    return copies


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--run", type=Path, nargs="+", default=None,
        help="run directory or .pt; several: their ensemble (default: the shipped model's .pt)",
    )  # fmt: skip
    p.add_argument(
        "--repeats", type=int, default=8, help="timed repeats per measurement, median reported (default 8: "
        "each of the 4 backends in each position of the rotating order twice)",
    )  # fmt: skip
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    p.add_argument("--frames", type=int, default=150, help="frames of the generated 640x480 clip (30 fps)")
    p.add_argument(
        "--threads", type=int, default=None, help="threads for torch and onnxruntime (default: all)"
    )
    p.add_argument("--yunet-model", type=Path, default=None, help="YuNet .onnx for the video rows")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import onnxruntime
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="ferkit-bench-") as tmp:
        models = snapshot(resolve_models(args.run), Path(tmp))
        backends: dict = {"torch eager": TorchBackend.from_checkpoint(models)}
        for weights in ("fp32", "fp16", "int8"):
            out = Path(tmp) / f"{weights}.onnx"
            print("\n".join(export_onnx(models, out, weights=weights).lines()), flush=True)
            backends[f"onnx {weights}"] = OnnxBackend.from_file(out, threads=args.threads)
        pp = backends["torch eager"].preprocessing
        x = sample_images(pp, 64)
        rows = classifier_rows(backends, x, args.repeats, args.warmup)
        detector = detector_for(args)
        vrows = video_rows(backends, write_clip(Path(tmp) / "clip.mp4", args.frames), detector, Path(tmp))
    print(
        f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}; "
        f"model {' + '.join(map(str, args.run or [])) or 'shipped default'} "
        f"({pp.input_size} px, {pp.in_chans} ch); "
        f"{args.repeats} repeats (median), {args.warmup} warm-up calls; "
        f"load average (1/5/15 min) {load_before} before, {load_average()} after\n"
    )
    print(markdown(rows, vrows, detector.name))


if __name__ == "__main__":
    main()
