"""Cross-dataset accuracy: every candidate model on FER2013 crops and on real photos, in one table.

  fer2013-public  FER2013 PublicTest (3,589 48 px face crops; the split models are selected on)
  wild-val        the "val" half of the muxspace photos (`ferkit.data.wild_halves`: stratified,
                  seed 0, never trained on), each photo run through the same path as
                  `ferkit predict`: YuNet, the largest face, the square crop with margin; a photo
                  without a detected face counts as a miss

Each model's probabilities are computed once per dataset (with the TTA asked for), so ensembles
(`--ensemble NAME=a+b`) are scored as the mean of their members' probabilities at no extra cost.

    .venv/bin/python benchmarks/cross_dataset.py                                  # the shipped models
    .venv/bin/python benchmarks/cross_dataset.py --model new=runs/a --model b=runs/b --ensemble ab=new+b
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script
from sklearn.metrics import f1_score

from ferkit.data import load_dataset, wild_halves
from ferkit.evaluation.evaluate import full_resolution_images
from ferkit.inference.recognizer import SHIPPED_TTA, Recognizer
from ferkit.models.preprocess import TTA_MODES

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def fer_public(path: Path) -> tuple[list[np.ndarray], list[str], int]:
    test = load_dataset(path).split("test")
    return list(test.images), [test.class_names[i] for i in test.labels], 0


def wild_val(path: Path, rec: Recognizer) -> tuple[list[np.ndarray | None], list[str], int]:
    """Detector crops of the wild validation half (None where no face was found)."""
    val = wild_halves(load_dataset(path)).split("val")
    crops: list[np.ndarray | None] = [None] * len(val)
    for index, images in full_resolution_images(val):
        for i, image in zip(index, images, strict=True):
            dets = rec.detector.detect(image)
            crops[i] = rec.detector.crops(image, dets[:1])[0] if dets else None
    return crops, [val.class_names[k] for k in val.labels], sum(c is None for c in crops)


def probabilities(rec: Recognizer, crops: list, names: list[str]) -> np.ndarray:
    """(N, len(names)) in the dataset's class order; rows of images without a face stay NaN."""
    out = np.full((len(crops), len(names)), np.nan, np.float32)
    found = [i for i, c in enumerate(crops) if c is not None]
    probs = rec.probabilities([crops[i] for i in found], batch_size=128)
    out[found] = probs[:, [rec.class_names.index(n) for n in names]]
    return out


def scores(probs: np.ndarray, labels: list[str], names: list[str]) -> dict:
    y = np.array([names.index(n) for n in labels])
    pred = np.where(np.isnan(probs).any(1), -1, np.nan_to_num(probs).argmax(1))
    recall = {n: float((pred[y == k] == k).mean()) for k, n in enumerate(names) if (y == k).any()}
    f1 = f1_score(y, pred, labels=range(len(names)), average="macro", zero_division=0)
    return {"accuracy": float((pred == y).mean()), "macro_f1": float(f1), "recall": recall, "n": len(y)}


def load(spec: str, tta: str) -> Recognizer:
    rec = Recognizer.load(spec.split("+") if "+" in spec else spec, detector="yunet")
    rec.tta = tta
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=SPEC",
                    help="default | fast | run dir | .onnx | a+b (ensemble); repeatable")  # fmt: skip
    ap.add_argument("--ensemble", action="append", default=[], metavar="NAME=A+B",
                    help="mean probability of models given with --model")  # fmt: skip
    ap.add_argument("--tta", default="flip", choices=TTA_MODES)
    ap.add_argument("--fer", type=Path, default=SHARED / "data/fer2013-dev.tar.gz")
    ap.add_argument("--photos", type=Path, default=SHARED / "data/muxspace-faces.tar.gz")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model) or {n: n for n in SHIPPED_TTA}
    print(f"# cross-dataset accuracy, TTA {args.tta}; {machine()}; load average {load_average()}")
    recs = {}
    for name, spec in models.items():
        try:
            recs[name] = load(spec, args.tta)
        except Exception as exc:  # a shipped name this installation lacks: report, go on
            print(f"skipping {name}: {exc}")
    names = list(next(iter(recs.values())).class_names)
    t0 = time.time()
    fer = fer_public(args.fer)
    wild = wild_val(args.photos, next(iter(recs.values())))
    print(f"data: PublicTest {len(fer[0])} crops; wild-val {len(wild[0])} photos, {wild[2]} without a face "
          f"({time.time() - t0:.0f}s)")  # fmt: skip
    probs = {(m, d): probabilities(r, data[0], names) for m, r in recs.items() for d, data in
             (("fer2013-public", fer), ("wild-val", wild))}  # fmt: skip
    for ens in args.ensemble:
        name, members = ens.split("=", 1)
        for d in ("fer2013-public", "wild-val"):
            probs[(name, d)] = np.mean([probs[(m, d)] for m in members.split("+")], axis=0)
    results = {}
    print("| model | FER2013 PublicTest acc / F1 | wild-val acc / F1 | wild-val recall per class |")
    print("|---|---|---|---|")
    for m in dict.fromkeys(k[0] for k in probs):
        r = {
            d: scores(probs[(m, d)], data[1], names)
            for d, data in (("fer2013-public", fer), ("wild-val", wild))
        }
        results[m] = r
        rec = " ".join(f"{n[:3]} {v:.2f}" for n, v in r["wild-val"]["recall"].items())
        print(f"| {m} | {r['fer2013-public']['accuracy']:.4f} / {r['fer2013-public']['macro_f1']:.4f} | "
              f"{r['wild-val']['accuracy']:.4f} / {r['wild-val']['macro_f1']:.4f} | {rec} |")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps({"tta": args.tta, "load": load_average(), "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
