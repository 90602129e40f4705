"""Robustness benchmark: accuracy of the shipped models under controlled shifts, and one mean.

  fer2013-public  FER2013 PublicTest 48-px crops (the split models are selected on)
  wild-val        the held-back half of the muxspace photos (`ferkit.data.wild_halves`, never trained
                  on), through `ferkit predict`'s path: YuNet, the largest face, the square crop
                  with margin 0.2; a photo without a face counts as a miss under every shift

Each dataset is a seeded subset (``--limit`` items, the same for every model and shift). The shifts
(`ferkit.evaluation.corruptions.suite`): framing (shift, scale, the detector margin on photos),
resolution, JPEG, blur, noise, gamma, contrast, rotation, occlusion, colour<->gray. The mean is
ImageNet-C's (severities averaged within a family, then families). Runs on the CPU with ONNX
Runtime; no torch needed.

    python benchmarks/robustness.py                         # default + fast, 500 items per dataset
    python benchmarks/robustness.py --limit 0 --model new=runs/x/model.onnx --tta flip
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script

from ferkit.data import FaceDataset, load_dataset, wild_halves
from ferkit.evaluation import robustness
from ferkit.evaluation.corruptions import Face, suite
from ferkit.fileio import atomic_write_text
from ferkit.inference.recognizer import SHIPPED_TTA, Recognizer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def subset(ds: FaceDataset, limit: int, seed: int) -> FaceDataset:
    """A seeded random subset of ``limit`` items (0: all), in the dataset's order."""
    if not limit or limit >= len(ds):
        return ds
    return ds.subset(np.sort(np.random.default_rng(seed).choice(len(ds), limit, replace=False)))


def datasets(args: argparse.Namespace, rec: Recognizer) -> dict[str, tuple[list, list[str]]]:
    """name → (faces, class names of the labels) for both datasets."""
    fer = subset(load_dataset(args.fer).split("test"), args.limit, args.seed)
    wild = subset(wild_halves(load_dataset(args.photos)).split("val"), args.limit, args.seed)
    return {
        "fer2013-public": ([Face.of_crop(im) for im in fer.images], [fer.class_names[k] for k in fer.labels]),
        "wild-val": (robustness.photo_faces(wild, rec.detector), [wild.class_names[k] for k in wild.labels]),
    }


def of_model(rows: list[dict], model: str) -> list[robustness.Row]:
    return [robustness.Row(**{k: v for k, v in r.items() if k not in ("model", "tta")})
            for r in rows if r["model"] == model]  # fmt: skip


def markdown(rows: list[dict], summaries: list[dict]) -> str:
    """Rows = shifts, columns = model x dataset; the means last."""
    cols = list(dict.fromkeys((r["model"], r["dataset"]) for r in rows))
    acc = {(r["model"], r["dataset"], r["family"], r["level"]): r["accuracy"] for r in rows}
    order = [(robustness.CLEAN, "")] + [(c.family, c.level) for c in suite()]
    shifts = sorted(dict.fromkeys((r["family"], r["level"]) for r in rows), key=order.index)
    lines = ["| shift | severity | " + " | ".join(f"{m} {d}" for m, d in cols) + " |",
             "|---|---|" + "---|" * len(cols)]  # fmt: skip
    for fam, lvl in shifts:
        cells = [f"{acc[(m, d, fam, lvl)]:.3f}" if (m, d, fam, lvl) in acc else "–" for m, d in cols]
        lines.append(f"| {fam} | {lvl} | " + " | ".join(cells) + " |")
    by = {(s["model"], s["dataset"]): s for s in summaries}
    means = " | ".join(f"**{by[c]['mean']:.3f}**" for c in cols)
    lines.append(f"| **mean (ImageNet-C style)** | | {means} |")
    lines.append("| mean / clean | | " + " | ".join(f"{by[c]['relative']:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=SPEC",
                    help="default | fast | run dir | .onnx (repeatable; default: both shipped)")  # fmt: skip
    ap.add_argument("--tta", default=None, choices=["none", "flip"], help="default: each model's own")
    ap.add_argument("--limit", type=int, default=500, help="items per dataset, seeded subset (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fer", type=Path, default=SHARED / "data/fer2013-dev.tar.gz")
    ap.add_argument("--photos", type=Path, default=SHARED / "data/muxspace-faces.tar.gz")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/runs/robustness",
                    help="writes OUT.csv (a row per model, dataset, shift), OUT.json, OUT.md")  # fmt: skip
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model) or {n: n for n in SHIPPED_TTA}
    recs = {name: Recognizer.load(spec, detector="yunet") for name, spec in models.items()}
    for rec in recs.values():
        rec.tta = args.tta or rec.tta
    started, load0 = time.time(), load_average()
    print(f"# robustness; {machine()}; load average {load0}")
    data = datasets(args, next(iter(recs.values())))
    rows: list[dict] = []
    for name, rec in recs.items():
        for dname, (faces, label_names) in data.items():
            labels = np.array([rec.class_names.index(n) for n in label_names])
            found = sum(f is not None for f in faces)
            print(f"{name} (tta {rec.tta}) on {dname}: n = {len(faces)}, {len(faces) - found} without a face")

            def show(r: robustness.Row, name: str = name) -> None:
                print(f"  {r.family:<11} {r.level:<10} {r.accuracy:.4f}  ({r.seconds:.0f}s)", flush=True)

            got = robustness.run(dname, faces, labels, lambda crops, rec=rec: rec.probabilities(crops, 128),
                                 seed=args.seed, progress=show)  # fmt: skip
            rows += [{"model": name, "tta": rec.tta, **r.to_dict()} for r in got]
    summaries = [{"model": name, "tta": recs[name].tta, **s.to_dict()}
                 for name in recs for s in robustness.summarise(of_model(rows, name))]  # fmt: skip
    table = markdown(rows, summaries)
    minutes = round((time.time() - started) / 60, 1)
    meta = {"machine": machine(), "load_average": [load0, load_average()], "limit": args.limit,
            "seed": args.seed, "minutes": minutes, "models": models}  # fmt: skip
    atomic_write_text(args.out.with_suffix(".csv"), robustness.rows_csv(rows))
    atomic_write_text(args.out.with_suffix(".json"),
                      json.dumps({**meta, "summaries": summaries, "rows": rows}, indent=2))  # fmt: skip
    atomic_write_text(args.out.with_suffix(".md"), table + "\n")
    print(table)
    for s in summaries:
        print(f"{s['model']} {s['dataset']}: clean {s['clean']:.4f}, mean {s['mean']:.4f} (n = {s['n']})")


if __name__ == "__main__":
    main()
