"""ferkit vs the `fer` package (PyPI) on FER2013 PublicTest face crops: accuracy, macro-F1, faces/s.

Both tools get the same decoded 48x48 grayscale crops (the archive's test/ split = PublicTest,
3,589 faces) and no face detection. fer runs in its own venv (benchmarks/peer_fer_setup.sh) as a
subprocess (benchmarks/peer_fer_worker.py, one timed pass of each fer mode per call); ferkit runs in
this process, one pass per model. The tools take turns in R interleaved rounds (fer pass, ferkit
passes, fer pass, ... in a rotating order), never at the same time, and the load average is printed
after every round; faces/s uses the median pass. Each tool is warmed up first (fer inside every
worker call). Preprocessing from uint8 crops is inside the timing for both; JPEG decoding is
outside for both.

    bash benchmarks/peer_fer_setup.sh                       # once: creates .venv-fer/
    .venv/bin/python benchmarks/peer_fer.py                 # ferkit's shipped models (default, fast)
    .venv/bin/python benchmarks/peer_fer.py --model runs/fer2013_cpu_lite0   # or a run / .pt / .onnx
    .venv/bin/python benchmarks/peer_fer.py --model default default@none fast q8.onnx@flip
    .venv/bin/python benchmarks/peer_fer.py --smoke         # 128 faces, 1 round: checks that it works

``--model`` takes several models, each ``default`` / ``fast`` (shipped) or a run dir / .pt / .onnx,
optionally suffixed ``@none`` or ``@flip`` for its TTA (else ``--tta``, else the model's own: flip for
the shipped default, none otherwise).
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script
from rounds import interleaved
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
    """One timed pass of every fer mode in its own venv; returns the worker's JSON or {"error": why}."""
    python = args.fer_venv / "bin" / "python"
    if not python.is_file():
        return {"error": f"no fer venv at {args.fer_venv} (create it: bash benchmarks/peer_fer_setup.sh)"}
    cmd = [str(python), str(WORKER), "--faces", str(faces_npz), "--modes", *args.fer_modes]
    cmd += ["--batch", str(args.fer_batch), "--repeats", "1"]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": f"fer worker failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def merge_fer(passes: list[dict]) -> dict:
    """The worker calls of all rounds as one result: every pass's seconds, the last pass's probabilities."""
    if not passes or "error" in passes[0]:
        return passes[0] if passes else {"error": "fer did not run"}
    merged = passes[-1]
    for mode, res in merged["modes"].items():
        res["seconds"] = [s for p in passes for s in p["modes"][mode]["seconds"]]
        res["faces_per_s"] = len(res["probs"]) / statistics.median(res["seconds"])
    return merged


@dataclass
class FerkitModel:
    """One ferkit contender: what the user asked for, its label and its loaded Recognizer."""

    spec: str
    label: str
    rec: object
    probs: np.ndarray | None = None
    seconds: list[float] = field(default_factory=list)


def load_ferkit(spec: str, args: argparse.Namespace) -> FerkitModel:
    """``MODEL[@tta]`` → a Recognizer as a user gets it (``Recognizer.load``)."""
    from ferkit.inference import Recognizer

    model, _, tta = spec.partition("@")
    rec = Recognizer.load(model, detector="none", threads=args.onnx_threads)
    if tta or args.tta:
        rec.tta = tta or args.tta
    label = model if model in ("default", "fast") else Path(model).name
    return FerkitModel(spec, f"{label}{'@' + tta if tta else ''}", rec)


def ferkit_pass(m: FerkitModel, images: np.ndarray, batch: int) -> None:
    """One timed pass of ``m`` over all faces."""
    start = time.perf_counter()
    m.probs = m.rec.probabilities(images, batch)
    m.seconds.append(time.perf_counter() - start)


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


def model_status(spec: str) -> str:
    """Which model is measured: a shipped one, or a run's checkpoint (epoch, selection score,
    whether the run had finished)."""
    from ferkit.models.factory import read_model_file

    model = spec.partition("@")[0]
    if model in ("default", "fast"):
        return f"ferkit's shipped {model} model (src/ferkit/assets, see MODEL_CARD.md)"
    run = Path(model)
    if run.suffix in (".onnx", ".pt"):
        return str(run)
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


def ferkit_row(m: FerkitModel, ds, args: argparse.Namespace, out: Path, first: bool) -> dict:
    """The model's row; writes its predictions (predictions_ferkit.csv for the first model,
    predictions_ferkit-LABEL.csv for the others)."""
    rec = m.rec
    if list(rec.class_names) != list(ds.class_names):
        raise SystemExit(
            f"{m.spec}: model classes {rec.class_names} differ from the data's {list(ds.class_names)}"
        )
    write_predictions(
        out / ("predictions_ferkit.csv" if first else f"predictions_ferkit-{m.label}.csv"), ds, m.probs
    )
    acc, f1 = scores(m.probs, ds.labels, len(ds.class_names))
    backend, size = type(rec.backend).__name__, rec.preprocessing.input_size
    note = f"{m.label} ({backend}), {size} px, Recognizer tta={rec.tta}"
    return {
        "tool": f"ferkit {m.label}", "accuracy": acc, "macro_f1": f1, "batch": args.batch, "note": note,
        "faces_per_s": len(ds) / statistics.median(m.seconds), "seconds": m.seconds,
    }  # fmt: skip


def ratios(rows: list[dict]) -> list[str]:
    """faces/s of every ferkit row over every fer row (same rounds)."""
    ours = [r for r in rows if r["tool"].startswith("ferkit") and "error" not in r]
    theirs = [r for r in rows if not r["tool"].startswith("ferkit") and "error" not in r]
    return [
        f"{a['tool']} / {b['tool']} faces/s = {a['faces_per_s'] / b['faces_per_s']:.3f}"
        for a in ours
        for b in theirs
    ]


def header(args: argparse.Namespace, n: int, fer: dict, load_before: str, round_loads: list[str]) -> str:
    import onnxruntime
    import torch

    versions = f"fer {fer['fer']}, tensorflow {fer['tensorflow']}, " if "error" not in fer else ""
    models = "; ".join(f"{spec}: {model_status(spec)}" for spec in args.model)
    return (
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"{versions}torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
        f"{n} faces ({args.data} {args.split}/); models {models}; torch threads {args.threads}, "
        f"onnxruntime intra-op threads {args.onnx_threads or 'default'}; "
        f"{args.repeats} interleaved round(s): "
        f"one fer worker call (every mode, one timed pass after its warm-up) and one pass per ferkit model "
        f"per round, rotating order, never concurrently; median pass used; load average (1/5/15 min) "
        f"{load_before} before, after each round: {' | '.join(round_loads)}."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", nargs="+", default=None,
        help="MODEL[@none|@flip] ...: default / fast (shipped) or run dir / .pt / .onnx "
        "(default: the shipped default, and fast if it is shipped)",
    )  # fmt: skip
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FER2013 folder-release archive")
    p.add_argument("--split", default="test", help="split to score (default test = PublicTest)")
    p.add_argument("--fer-venv", type=Path, default=ROOT / ".venv-fer", help="venv made by peer_fer_setup.sh")
    p.add_argument("--fer-modes", nargs="+", choices=FER_MODES, default=list(FER_MODES))
    p.add_argument("--batch", type=int, default=256, help="ferkit faces per network batch")
    p.add_argument("--fer-batch", type=int, default=256, help="faces per call of fer's Keras model")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (one timed pass per tool each)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for ferkit (run dirs, .pt)")
    p.add_argument(
        "--onnx-threads", type=int, default=None, help="onnxruntime intra-op threads (default: ferkit's)"
    )
    p.add_argument(
        "--tta", choices=("none", "flip"), default=None,
        help="ferkit TTA for models without @tta (default: the Recognizer's, flip for the shipped default)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="only N faces, evenly spaced over the split")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "peer_fer", help="predictions and summary")
    p.add_argument("--smoke", action="store_true", help="128 faces, 1 round: checks that it works")
    args = p.parse_args(argv)
    if args.smoke:
        args.limit, args.repeats = args.limit or 128, 1
    if args.model is None:
        from ferkit.inference.recognizer import ASSETS

        args.model = ["default"] + (["fast"] if (ASSETS / "fast_model.onnx").is_file() else [])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    load_before = load_average()
    print(f"load average (1/5/15 min) before: {load_before}", flush=True)
    ds = load_faces(args.data, args.split, args.limit)
    images = np.ascontiguousarray(ds.images)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "faces.npz", faces=images[..., 0])
    models = [load_ferkit(spec, args) for spec in args.model]
    for m in models:
        m.rec.probabilities(images[:32], args.batch)  # warm-up
    passes: list[dict] = []
    turns = {"fer": lambda: passes.append(run_fer(args, args.out / "faces.npz"))}
    turns |= {f"ferkit {m.label}": (lambda m=m: ferkit_pass(m, images, args.batch)) for m in models}
    round_loads: list[str] = []
    for r in range(args.repeats):  # one round at a time, so the load after each round is recorded
        order = {k: turns[k] for k in list(turns)[r % len(turns) :] + list(turns)[: r % len(turns)]}
        interleaved(order, 1, warmup=0, verbose=False)
        round_loads.append(load_average())
        print(
            f"round {r + 1}/{args.repeats} ({', '.join(order)}): load average {round_loads[-1]}", flush=True
        )
    fer = merge_fer(passes)
    if "error" in fer:
        print(f"fer could not run: {fer['error']}", file=sys.stderr)
    rows = [*fer_rows(fer, ds, args.out)]
    rows += [ferkit_row(m, ds, args, args.out, first=i == 0) for i, m in enumerate(models)]
    report = (
        f"{header(args, len(ds), fer, load_before, round_loads)}\n\n{table(rows)}\n\n"
        + "\n".join(ratios(rows))
        + "\n"
    )
    print(report)
    (args.out / "summary.md").write_text(report)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"predictions and summary: {args.out}")
    return 1 if "error" in fer else 0


if __name__ == "__main__":
    sys.exit(main())
