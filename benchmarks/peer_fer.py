"""ferkit vs the `fer` package (PyPI) on FER2013 PublicTest face crops: accuracy, macro-F1, faces/s.

Both tools get the same decoded 48x48 grayscale crops (the archive's test/ split = PublicTest,
3,589 faces) and no face detection. fer runs in its own venv (benchmarks/peer_fer_setup.sh) as a
subprocess (benchmarks/peer_fer_worker.py); ferkit runs in this process, after fer, never at the
same time. Each tool is warmed up, then timed over R full passes; faces/s uses the median pass.
Preprocessing from uint8 crops is inside the timing for both; JPEG decoding is outside for both.

    bash benchmarks/peer_fer_setup.sh                       # once: creates .venv-fer/
    .venv/bin/python benchmarks/peer_fer.py                 # ferkit's shipped default model
    .venv/bin/python benchmarks/peer_fer.py --model runs/fer2013_cpu_lite0   # or a run / .pt / .onnx
    .venv/bin/python benchmarks/peer_fer.py --smoke         # 128 faces, 1 pass: checks that it works
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script
from sklearn.metrics import accuracy_score, f1_score

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013-dev.tar.gz"
WORKER = Path(__file__).resolve().with_name("peer_fer_worker.py")
FER_MODES = ("tflite", "keras", "api")
FER_NOTES = {
    "tflite": "fer default model (quantized TFLite), on the crops",
    "keras": "fer bundled Keras model (emotion_model.hdf5), on the crops",
    "api": "fer public API detect_emotions(crop, box = whole crop)",
}


def load_faces(data: Path, split: str, limit: int | None):
    """The split's crops as ferkit decodes them (uint8 N,H,W,1), with labels and class names."""
    from ferkit.data import load_dataset

    ds = load_dataset(data).split(split)
    if limit and limit < len(ds):  # evenly spaced, so every class folder is represented
        ds = ds.subset(np.unique(np.linspace(0, len(ds) - 1, limit).round().astype(int)))
    return ds


def run_fer(args: argparse.Namespace, faces_npz: Path) -> dict:
    """fer's part in its own venv; returns the worker's JSON or {"error": why}."""
    python = args.fer_venv / "bin" / "python"
    if not python.is_file():
        return {"error": f"no fer venv at {args.fer_venv} (create it: bash benchmarks/peer_fer_setup.sh)"}
    cmd = [str(python), str(WORKER), "--faces", str(faces_npz), "--modes", *args.fer_modes]
    cmd += ["--batch", str(args.fer_batch), "--repeats", str(args.repeats)]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": f"fer worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ferkit(args: argparse.Namespace, images: np.ndarray) -> dict:
    """ferkit as a user runs it: the Recognizer (shipped default model unless --model), batched."""
    import torch

    from ferkit.inference import Recognizer

    torch.set_num_threads(args.threads)
    rec = Recognizer.load(args.model, detector="none")
    if args.tta is not None:
        rec.tta = args.tta
    rec.probabilities(images[:32], args.batch)  # warm-up
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        probs = rec.probabilities(images, args.batch)
        seconds.append(time.perf_counter() - start)
    return {"probs": probs, "seconds": seconds, "class_names": rec.class_names, "rec": rec}


def align_fer(fer_probs: list, fer_labels: list[str], class_names: tuple[str, ...]) -> np.ndarray:
    """fer's columns (angry, disgust, fear, happy, sad, surprise, neutral) → the folder names' order."""
    probs = np.asarray(fer_probs, dtype=np.float32)
    return probs[:, [fer_labels.index(name) for name in class_names]]


def scores(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[float, float]:
    pred = probs.argmax(1)
    f1 = f1_score(labels, pred, labels=list(range(n_classes)), average="macro", zero_division=0)
    return float(accuracy_score(labels, pred)), float(f1)


def write_predictions(path: Path, ds, probs: np.ndarray) -> None:
    """One row per face: source file, true and predicted class, probability per class."""
    names = list(ds.class_names)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item", "true", "predicted", *names])
        for src, y, p in zip(ds.sources, ds.labels, probs, strict=True):
            w.writerow([src, names[y], names[int(p.argmax())], *(f"{v:.6f}" for v in p)])


def model_status(model: Path | None) -> str:
    """Which model is measured: the shipped default, or a run's checkpoint (epoch, selection score,
    whether the run had finished)."""
    from ferkit.models.factory import read_model_file

    if model is None:
        return "ferkit's shipped default model (src/ferkit/assets, see MODEL_CARD.md)"
    if model.suffix in (".onnx", ".pt"):
        return str(model)
    run = model
    ckpts = run / "checkpoints" if run.is_dir() else run.parent
    best = read_model_file(ckpts / "best.pt")
    what = f"best.pt = epoch {best.get('epoch', '?')}"
    if "metrics" in best:
        what += f" (val acc {best['metrics'].get('val_acc', float('nan')):.4f} as selected in training)"
    if (ckpts / "last.pt").is_file():
        prog = read_model_file(ckpts / "last.pt")["train_state"]["progress"]
        done = len(prog.get("history", []))
        what += "; run finished" if prog.get("done") else f"; run still training ({done} epochs done)"
    return f"{run}: {what}"


def table(rows: list[dict]) -> str:
    lines = ["| tool | accuracy | macro-F1 | faces/s | batch | what ran |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['tool']} | – | – | – | – | not run: {r['error'].splitlines()[0]} |")
        else:
            lines.append(
                f"| {r['tool']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['faces_per_s']:.0f} "
                f"| {r['batch']} | {r['note']} |"
            )
    return "\n".join(lines)


def fer_rows(fer: dict, ds, out: Path) -> list[dict]:
    """One row per fer mode (or one error row); writes each mode's predictions."""
    if "error" in fer:
        return [{"tool": "fer", "error": fer["error"]}]
    rows = []
    for mode, res in fer["modes"].items():
        probs = align_fer(res["probs"], fer["labels"], ds.class_names)
        write_predictions(out / f"predictions_fer-{mode}.csv", ds, probs)
        acc, f1 = scores(probs, ds.labels, len(ds.class_names))
        rows.append({
            "tool": f"fer {fer['fer']} ({mode})", "accuracy": acc, "macro_f1": f1,
            "faces_per_s": res["faces_per_s"], "batch": res["batch"], "note": FER_NOTES[mode],
            "seconds": res["seconds"],
        })  # fmt: skip
    return rows


def ferkit_row(res: dict, ds, args: argparse.Namespace, out: Path) -> dict:
    if list(res["class_names"]) != list(ds.class_names):
        raise SystemExit(f"model classes {res['class_names']} differ from the data's {list(ds.class_names)}")
    write_predictions(out / "predictions_ferkit.csv", ds, res["probs"])
    acc, f1 = scores(res["probs"], ds.labels, len(ds.class_names))
    rec = res["rec"]
    note = f"{args.model.name if args.model else 'default model'} ({type(rec.backend).__name__}), "
    note += f"{rec.preprocessing.input_size} px, Recognizer tta={rec.tta}"
    return {
        "tool": "ferkit", "accuracy": acc, "macro_f1": f1, "batch": args.batch, "note": note,
        "faces_per_s": len(ds) / statistics.median(res["seconds"]), "seconds": res["seconds"],
    }  # fmt: skip


def ratios(rows: list[dict]) -> list[str]:
    ferkit = next(r for r in rows if r["tool"] == "ferkit")
    return [
        f"ferkit / {r['tool']} faces/s = {ferkit['faces_per_s'] / r['faces_per_s']:.3f}"
        for r in rows
        if r["tool"] != "ferkit" and "error" not in r
    ]


def header(args: argparse.Namespace, n: int, fer: dict) -> str:
    import torch

    versions = f"fer {fer['fer']}, tensorflow {fer['tensorflow']}, " if "error" not in fer else ""
    return (
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"{versions}torch {torch.__version__}; {n} faces ({args.data} {args.split}/); "
        f"model {model_status(args.model)}; torch threads {args.threads}; "
        f"{args.repeats} timed pass(es) per tool after a warm-up, "
        f"median used; fer ran first (its own venv), then ferkit, never concurrently; "
        f"load average (1/5/15 min) at the end {load_average()}."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", type=Path, default=None, help="run dir, .pt or .onnx (default: ferkit's shipped model)"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FER2013 folder-release archive")
    p.add_argument("--split", default="test", help="split to score (default test = PublicTest)")
    p.add_argument("--fer-venv", type=Path, default=ROOT / ".venv-fer", help="venv made by peer_fer_setup.sh")
    p.add_argument("--fer-modes", nargs="+", choices=FER_MODES, default=list(FER_MODES))
    p.add_argument("--batch", type=int, default=256, help="ferkit faces per network batch")
    p.add_argument("--fer-batch", type=int, default=256, help="faces per call of fer's Keras model")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over all faces per tool")
    p.add_argument("--threads", type=int, default=2, help="torch threads for ferkit")
    p.add_argument(
        "--tta", choices=("none", "flip"), default=None,
        help="ferkit TTA (default: the Recognizer's, flip for the shipped model, none for --model)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="only N faces, evenly spaced over the split")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "peer_fer", help="predictions and summary")
    p.add_argument("--smoke", action="store_true", help="128 faces, 1 pass: checks that it works")
    args = p.parse_args(argv)
    if args.smoke:
        args.limit, args.repeats = args.limit or 128, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"load average (1/5/15 min) before: {load_average()}")
    ds = load_faces(args.data, args.split, args.limit)
    images = np.ascontiguousarray(ds.images)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "faces.npz", faces=images[..., 0])
    fer = run_fer(args, args.out / "faces.npz")
    if "error" in fer:
        print(f"fer could not run: {fer['error']}", file=sys.stderr)
    rows = [*fer_rows(fer, ds, args.out), ferkit_row(run_ferkit(args, images), ds, args, args.out)]
    report = f"{header(args, len(ds), fer)}\n\n{table(rows)}\n\n" + "\n".join(ratios(rows)) + "\n"
    print(report)
    (args.out / "summary.md").write_text(report)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"predictions and summary: {args.out}")
    return 1 if "error" in fer else 0


if __name__ == "__main__":
    sys.exit(main())
