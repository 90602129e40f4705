"""Accuracy/speed Pareto table of small (fast-tier) models: parameters, FLOPs, accuracy, faces/s.

For each model (a run directory or .pt; default: the three distilled students in /work/runs):
  parameters   of the torch model
  FLOPs        per face, counted by torch.utils.flop_counter.FlopCounterMode on one input
               (convolutions and matrix products, 2 FLOPs per multiply-add; elementwise ops uncounted)
  accuracy     and macro-F1 on the split (default test = FER2013 PublicTest), with and without flip
               TTA, for the ONNX fp32 and the static int8 file (ferkit's Recognizer on the uint8 crops)
  faces/s      at batch 1, 64 and 256 for ONNX fp32 and static int8 (onnxruntime, ferkit's default
               session options unless --threads), on prepared real faces of the split, preprocessing
               outside the timing; all models x weights measured in interleaved rounds (A, B, A, B ...)
               with the load average printed after every round; the median round is reported

Each model is exported with ferkit.export.export_onnx into a temporary folder: fp32, and int8
calibrated on the archive's training split (ferkit's own calibration subset).

    .venv/bin/python benchmarks/fast_pareto.py
    .venv/bin/python benchmarks/fast_pareto.py --models /work/runs/fast_mnv2_48 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script
from rounds import interleaved, per_second
from sklearn.metrics import accuracy_score, f1_score

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013-dev.tar.gz"
STUDENTS = [
    Path("/work/runs/fast_lite0_64"),
    Path("/work/runs/fast_mnv2_64"),
    Path("/work/runs/fast_mnv2_48"),
]
BATCHES = (1, 64, 256)
WEIGHTS = ("fp32", "int8")


@dataclass
class ModelRow:
    """One model's measurements (accuracy keys: 'fp32', 'fp32 flip', 'int8', 'int8 flip')."""

    model: str
    architecture: str
    input_size: int
    parameters: int
    flops: int
    file_mb: dict[str, float] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)
    macro_f1: dict[str, float] = field(default_factory=dict)
    faces_per_s: dict[str, float] = field(default_factory=dict)  # "fp32 b1", "int8 b256", ...


def size_and_flops(run: Path) -> tuple[str, int, int, int]:
    """Architecture, input size, parameters and FLOPs per face of the torch model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ferkit.inference.backends import TorchBackend

    backend = TorchBackend.from_checkpoint(run)
    pp, model = backend.preprocessing, backend.model
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, pp.in_chans, pp.input_size, pp.input_size))
    arch = getattr(model, "default_cfg", {}).get("architecture") or type(model).__name__
    spec = run / "model.json" if run.is_dir() else None
    if spec and spec.is_file():
        arch = json.loads(spec.read_text()).get("spec", {}).get("name", arch)
    return arch, pp.input_size, params, counter.get_total_flops()


def export_both(run: Path, tmp: Path, data: Path, split: str) -> dict[str, Path]:
    """fp32 and static int8 (calibrated on the training split of ``data``) ONNX files of ``run``."""
    from ferkit.export import export_onnx

    files = {}
    for weights in WEIGHTS:
        out = tmp / f"{run.name}_{weights}.onnx"
        extra = {"data": data, "split": split} if weights == "int8" else {}
        print("\n".join(export_onnx(run, out, weights=weights, **extra).lines()), flush=True)
        files[weights] = out
    return files


def score(rec, images: np.ndarray, labels: np.ndarray, tta: str) -> tuple[float, float]:
    """Accuracy and macro-F1 of the recognizer with ``tta`` on the uint8 crops."""
    rec.tta = tta
    pred = rec.probabilities(images, 256).argmax(1)
    n = len(rec.class_names)
    f1 = f1_score(labels, pred, labels=list(range(n)), average="macro", zero_division=0)
    return float(accuracy_score(labels, pred)), float(f1)


def load_split(data: Path, split: str, limit: int | None):
    """The split's faces (evenly spaced subset of ``limit``), as ferkit decodes them."""
    from ferkit.data import load_dataset

    ds = load_dataset(data).split(split)
    if limit and limit < len(ds):
        ds = ds.subset(np.unique(np.linspace(0, len(ds) - 1, limit).round().astype(int)))
    return ds


def speed(backends: dict[str, object], inputs: dict[str, np.ndarray], args: argparse.Namespace) -> dict:
    """faces/s of every backend at every batch size, all backends interleaved per batch size."""
    out: dict[str, dict[str, float]] = {name: {} for name in backends}
    for batch in BATCHES:
        faces = args.faces_b1 if batch == 1 else max(batch, args.faces)

        def call(name: str, batch: int = batch, faces: int = faces):
            x = inputs[name][:faces]
            return lambda: [backends[name].probabilities(x[i : i + batch]) for i in range(0, faces, batch)]

        print(f"batch {batch}: {faces} faces per call, {len(backends)} contenders", flush=True)
        seconds = interleaved({name: call(name) for name in backends}, args.rounds)
        for name, s in seconds.items():
            out[name][f"b{batch}"] = per_second(faces, s)
    return out


def markdown(rows: list[ModelRow]) -> str:
    head = (
        "| model | px | params | MFLOPs/face | int8 MB | acc fp32 | acc fp32 flip | F1 fp32 | F1 flip "
        "| acc int8 | acc int8 flip | " + " | ".join(f"{w} b{b} f/s" for w in WEIGHTS for b in BATCHES) + " |"
    )
    lines = [head, "|" + "---|" * (11 + len(WEIGHTS) * len(BATCHES))]
    for r in rows:
        a, f = r.accuracy, r.macro_f1
        speeds = " | ".join(f"{r.faces_per_s[f'{w} b{b}']:.0f}" for w in WEIGHTS for b in BATCHES)
        lines.append(
            f"| {r.model} ({r.architecture}) | {r.input_size} | {r.parameters / 1e6:.2f} M "
            f"| {r.flops / 1e6:.1f} | {r.file_mb['int8']:.1f} | {a['fp32']:.4f} | {a['fp32 flip']:.4f} "
            f"| {f['fp32']:.4f} | {f['fp32 flip']:.4f} | {a['int8']:.4f} | {a['int8 flip']:.4f} | {speeds} |"
        )
    return "\n".join(lines)


def int8_ratios(rows: list[ModelRow]) -> str:
    return "\n".join(
        f"{r.model}: int8/fp32 faces/s "
        + ", ".join(f"b{b} {r.faces_per_s[f'int8 b{b}'] / r.faces_per_s[f'fp32 b{b}']:.2f}x" for b in BATCHES)
        for r in rows
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, nargs="+", default=STUDENTS, help="run directories or .pt files")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FER2013 folder-release archive")
    p.add_argument("--split", default="test", help="split to score (default test = PublicTest)")
    p.add_argument("--limit", type=int, default=None, help="score only N faces, evenly spaced")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per batch size")
    p.add_argument("--faces", type=int, default=512, help="faces per timed call at batch 64/256")
    p.add_argument("--faces-b1", type=int, default=64, help="faces per timed call at batch 1")
    p.add_argument(
        "--threads", type=int, default=None, help="onnxruntime intra-op threads (default: ferkit's)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    p.add_argument("--keep", type=Path, default=None, help="write the ONNX files here (default: a temp dir)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import onnxruntime

    from ferkit.inference import Recognizer
    from ferkit.inference.backends import OnnxBackend
    from ferkit.models.preprocess import prepare

    load_before = load_average()
    print(f"load average (1/5/15 min) before: {load_before}", flush=True)
    ds = load_split(args.data, args.split, args.limit)
    images = np.ascontiguousarray(ds.images)
    rows, backends, inputs = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="ferkit-pareto-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for run in args.models:
            arch, size, params, flops = size_and_flops(run)
            row = ModelRow(run.name, arch, size, params, flops)
            for weights, path in export_both(run, folder, args.data, args.split).items():
                backend = OnnxBackend.from_file(path, threads=args.threads)
                if list(backend.class_names) != list(ds.class_names):
                    sys.exit(f"{run}: classes {backend.class_names} differ from the data's {ds.class_names}")
                row.file_mb[weights] = path.stat().st_size / 1e6
                rec = Recognizer(backend, detector="none")
                for tta, suffix in (("none", ""), ("flip", " flip")):
                    acc, f1 = score(rec, images, ds.labels, tta)
                    row.accuracy[weights + suffix], row.macro_f1[weights + suffix] = acc, f1
                backends[f"{run.name} {weights}"] = backend
                inputs[f"{run.name} {weights}"] = prepare(
                    images[: max(args.faces, 256)], backend.preprocessing
                )
            print(f"{run.name}: accuracy {row.accuracy}", flush=True)
            rows.append(row)
        measured = speed(backends, inputs, args)
    for row in rows:
        for weights in WEIGHTS:
            for key, value in measured[f"{row.model} {weights}"].items():
                row.faces_per_s[f"{weights} {key}"] = value
    print(
        f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"onnxruntime {onnxruntime.__version__} (intra-op threads {args.threads or 'default'}); "
        f"{len(ds)} faces of {args.data.name} {args.split}/; "
        f"{args.rounds} interleaved rounds per batch size (median); batch 1: {args.faces_b1} faces per call, "
        f"batch 64/256: {args.faces}; "
        f"load average (1/5/15 min) {load_before} before, {load_average()} after\n"
    )
    print(markdown(rows) + "\n\n" + int8_ratios(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    main()
