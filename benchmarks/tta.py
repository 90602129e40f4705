"""TTA that pays? Accuracy vs cost of every TTA mode (`ferkit.models.preprocess.TTA_MODES`).

For each model, the probabilities of every distinct view (the 14 of ``shift+scale+flip`` and the 10
of ``tencrop``) are computed once per dataset; a mode's accuracy is the mean over its views, as the
recognizer computes it (checked on a sample against `Recognizer.probabilities` with that mode). The
cost is measured side by side in one run: faces/s of each mode on the same crops, interleaved
rounds, relative to no TTA.

  fer2013-public  a seeded subset of FER2013 PublicTest (``--limit``)
  wild-val        the held-back half of the muxspace photos, `ferkit predict`'s crop; no face = miss

    python benchmarks/tta.py [--limit 1200] [--model NAME=SPEC ...] [--out docs/runs/tta]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script
from robustness import SHARED, subset

from ferkit.data import load_dataset, wild_halves
from ferkit.evaluation import robustness
from ferkit.fileio import atomic_write_text
from ferkit.inference.recognizer import SHIPPED_TTA, Recognizer
from ferkit.models.preprocess import TTA_MODES

ROOT = Path(__file__).resolve().parents[1]
# Positions of each mode's views among [the 14 views of shift+scale+flip] + [the 10 of tencrop]:
# 0 centre, 1-4 shifts, 5-6 scales, 7-13 their mirrors; 14-23 tencrop.
VIEWS = {"none": [0], "flip": [0, 7], "shift": [0, 1, 2, 3, 4],
         "shift+flip": [0, 1, 2, 3, 4, 7, 8, 9, 10, 11],
         "scale+flip": [0, 5, 6, 7, 12, 13], "shift+scale+flip": list(range(14)),
         "tencrop": list(range(14, 24))}  # fmt: skip


def view_probabilities(rec: Recognizer, crops: list[np.ndarray], batch: int = 128) -> np.ndarray:
    """(24, N, classes): every view's probabilities."""
    out = []
    for i in range(0, len(crops), batch):
        rec.tta = "shift+scale+flip"
        views = rec.views(crops[i : i + batch], batch)
        rec.tta = "tencrop"
        views += rec.views(crops[i : i + batch], batch)
        out.append(np.stack([rec.backend.probabilities(np.ascontiguousarray(v)) for v in views]))
    return np.concatenate(out, axis=1)


def accuracy(probs: np.ndarray, labels: np.ndarray, found: np.ndarray) -> float:
    return robustness.accuracy(probs, labels, found)


def speed(rec: Recognizer, crops: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Median faces/s of each mode, the modes interleaved within each round."""
    times: dict[str, list[float]] = {m: [] for m in TTA_MODES}
    for _ in range(rounds):
        for mode in TTA_MODES:
            rec.tta = mode
            t0 = time.perf_counter()
            rec.probabilities(crops, 64)
            times[mode].append(time.perf_counter() - t0)
    return {m: len(crops) / float(np.median(t)) for m, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=SPEC")
    ap.add_argument("--limit", type=int, default=1200, help="PublicTest items (seeded subset; 0 = all)")
    ap.add_argument("--wild-limit", type=int, default=0, help="wild-val items (0 = all)")
    ap.add_argument("--speed-faces", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fer", type=Path, default=SHARED / "data/fer2013-dev.tar.gz")
    ap.add_argument("--photos", type=Path, default=SHARED / "data/muxspace-faces.tar.gz")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/runs/tta")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model) or {n: n for n in SHIPPED_TTA}
    recs = {name: Recognizer.load(spec, detector="yunet") for name, spec in models.items()}
    load0, started = load_average(), time.time()
    print(f"# TTA accuracy vs cost; {machine()}; load average {load0}")
    fer = subset(load_dataset(args.fer).split("test"), args.limit, args.seed)
    wild = subset(wild_halves(load_dataset(args.photos)).split("val"), args.wild_limit, args.seed)
    faces = robustness.photo_faces(wild, next(iter(recs.values())).detector)
    fer_labels = [fer.class_names[k] for k in fer.labels]
    data = {
        "fer2013-public": (list(fer.images), fer_labels, np.ones(len(fer), bool)),
        "wild-val": ([f.crop() for f in faces if f is not None], [wild.class_names[k] for k in wild.labels],
                     np.array([f is not None for f in faces])),
    }  # fmt: skip
    rows = []
    for name, rec in recs.items():
        own = rec.tta
        acc: dict[str, dict[str, float]] = {m: {} for m in TTA_MODES}
        for dname, (crops, label_names, found) in data.items():
            labels = np.array([rec.class_names.index(n) for n in label_names])
            views = view_probabilities(rec, crops)
            for mode in TTA_MODES:
                acc[mode][dname] = accuracy(views[VIEWS[mode]].mean(0), labels, found)
            for mode in TTA_MODES:  # the cached views average to what the recognizer computes
                rec.tta = mode
                expected = views[VIEWS[mode], :8].mean(0)
                np.testing.assert_allclose(rec.probabilities(crops[:8]), expected, atol=1e-5)
            shown = ", ".join(f"{m} {acc[m][dname]:.4f}" for m in TTA_MODES)
            print(f"{name} {dname}: n = {len(found)}, {shown}", flush=True)
        fps = speed(rec, list(fer.images[: args.speed_faces]), args.rounds)
        for mode in TTA_MODES:
            rows.append({"model": name, "shipped_tta": own, "tta": mode, "views": len(VIEWS[mode]),
                         **acc[mode], "faces_per_s": fps[mode],
                         "relative_speed": fps[mode] / fps["none"]})  # fmt: skip
        rec.tta = own
    lines = ["| model | TTA | views | PublicTest acc | wild-val acc | faces/s | relative speed |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        mode = r["tta"] + (" (shipped)" if r["tta"] == r["shipped_tta"] else "")
        cells = [r["model"], mode, r["views"], f"{r['fer2013-public']:.4f}", f"{r['wild-val']:.4f}",
                 f"{r['faces_per_s']:.1f}", f"{r['relative_speed']:.2f}x"]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    table = "\n".join(lines)
    minutes = round((time.time() - started) / 60, 1)
    meta = {"machine": machine(), "load_average": [load0, load_average()], "seed": args.seed,
            "n": {d: len(v[2]) for d, v in data.items()}, "minutes": minutes}  # fmt: skip
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({**meta, "rows": rows}, indent=2))
    atomic_write_text(args.out.with_suffix(".md"), table + "\n")
    print(table)
    print(meta)


if __name__ == "__main__":
    main()
