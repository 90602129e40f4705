"""Adapting to a photo dataset: zero-shot vs `ferkit adapt` (head, finetune) vs the paper-004 recipe.

All on the same subject-grouped stratified K folds of one photo dataset (default: the wild-val half
of the muxspace photos, which the shipped models never trained on; people from the file names
``<Name>_<n>.jpg``). Per method: mean accuracy and macro-F1 over the folds (flip TTA; a photo
without a detected face counts as wrong for the detector-based methods) and the wall time on this
machine, with the load average. The paper-004 recipe trains from ImageNet (the shared Lite0 weights:
genuine B1 weights are not obtainable here) on the whole photos as `ferkit train` reads them.

    python benchmarks/adapt.py [--data D] [--folds 5] [--skip paper004] [--paper004-epochs 20] [--merge]

The dataset cache (FERKIT_CACHE_DIR) decides whether the frozen features are computed in the run;
the wall times in the README were measured with an empty cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from ferkit.adapt.folds import kfold
from ferkit.adapt.run import AdaptOptions, adapt
from ferkit.data import load_dataset, wild_halves
from ferkit.data.split import item_groups
from ferkit.models.factory import load_bundle
from ferkit.models.predict import predict_proba
from ferkit.training.config import load_config
from ferkit.training.data import TrainData
from ferkit.training.engine import Trainer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PERSON = r"([^/]+)_[0-9]+k?\.[A-Za-z]+$"


def paper004_fold(
    ds, train: np.ndarray, test: np.ndarray, groups, run: Path, seed: int, epochs: int
) -> tuple[float, float]:
    """The paper-004 recipe from ImageNet on one fold (its own grouped 15 % validation part)."""
    from ferkit.adapt.finetune import VAL_SHARE
    from ferkit.data.split import ResolvedSplit, split_pool

    part = split_pool(
        ds.subset(train), [1 - VAL_SHARE, VAL_SHARE], ["train", "val"], seed, groups=groups[train]
    )
    split = ResolvedSplit(source=ds.origin, layout=ds.layout, method="pool", counts=part.class_counts())
    weights = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
    cfg = load_config(ROOT / "configs" / "folders_effb1_paper004.yaml", [
        "model.name=tf_efficientnet_lite0", f"model.pretrained={weights}", "model.input_size=112",
        "train.checkpoint_every_minutes=null", f"stages.0.epochs={epochs}", f"stages.1.epochs={epochs}",
    ])  # fmt: skip
    Trainer(cfg, run).fit(data=TrainData(part.split("train"), part.split("val"), "val", split))
    from ferkit.models.factory import read_bundle

    model, _, pp = load_bundle(read_bundle(run))
    pred = predict_proba(model, ds.subset(test).images, pp, tta="flip").argmax(1)
    y = ds.labels[test]
    return float((pred == y).mean()), float(f1_score(y, pred, average="macro", zero_division=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "data" / "muxspace-faces.tar.gz"))
    ap.add_argument("--wild-val", action=argparse.BooleanOptionalAction, default=True,
                    help="use the held-back half of a photo pool (ferkit.data.wild_halves)")  # fmt: skip
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--models", default="default,fast")
    ap.add_argument("--skip", default="", help="comma list of: head, finetune, paper004")
    ap.add_argument("--paper004-epochs", type=int, default=20, help="epochs of each of its two stages")
    ap.add_argument("--merge", action="store_true", help="add the rows to --out's, replacing same methods")
    ap.add_argument("--out", default=str(ROOT / "docs" / "runs" / "adapt_benchmark.json"))
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    ds = load_dataset(args.data)
    if args.wild_val:
        ds = wild_halves(ds).split("val")
    groups = item_groups(ds, PERSON)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="ferkit-adapt-bench-"))
    for model in args.models.split(","):
        for mode in ("head", "finetune"):
            if mode in skip:
                continue
            started = time.monotonic()
            opts = AdaptOptions(model=model, mode=mode, folds=args.folds, group_by=PERSON)
            v = adapt(ds, work / f"{model}-{mode}", opts).to_dict()
            seconds = time.monotonic() - started
            if mode == "head":
                rows.append({"method": f"{model}, zero-shot", "accuracy": v["zero_shot_accuracy_mean"],
                             "sd": v["zero_shot_accuracy_sd"], "macro_f1": v["zero_shot_macro_f1_mean"],
                             "seconds": None})  # fmt: skip
                print(rows[-1], flush=True)
            rows.append({"method": f"{model}, adapt --mode {mode}", "accuracy": v["accuracy_mean"],
                         "sd": v["accuracy_sd"], "macro_f1": v["macro_f1_mean"], "seconds": seconds,
                         "choices": [f["choices"] for f in v["per_fold"]]})  # fmt: skip
            print(rows[-1], flush=True)
    if "paper004" not in skip:
        started = time.monotonic()
        scores = []
        for k, (train, test) in enumerate(kfold(ds.labels, args.folds, groups, 0)):
            scores.append(
                paper004_fold(ds, train, test, groups, work / f"paper004-{k}", 0, args.paper004_epochs)
            )
            print(
                f"paper-004 fold {k + 1}: accuracy {scores[-1][0]:.4f}, macro-F1 {scores[-1][1]:.4f}",
                flush=True,
            )
        acc = [s[0] for s in scores]
        e = args.paper004_epochs
        rows.append({"method": f"paper-004 recipe from ImageNet (Lite0, 112 px, {e}+{e} epochs, early stop)",
                     "accuracy": float(np.mean(acc)), "sd": float(np.std(acc)),
                     "macro_f1": float(np.mean([s[1] for s in scores])),
                     "seconds": time.monotonic() - started})  # fmt: skip
    record = {
        "data": f"{args.data}{' (wild-val half)' if args.wild_val else ''}", "n": len(ds),
        "groups": len(set(groups.tolist())), "folds": args.folds, "grouping": PERSON,
        "tta": "flip", "cpu_count": os.cpu_count(), "load_average_end": os.getloadavg(), "rows": rows,
    }  # fmt: skip
    if args.merge and Path(args.out).is_file():
        mine = {r["method"] for r in rows}
        rows[:0] = [r for r in json.loads(Path(args.out).read_text())["rows"] if r["method"] not in mine]
        record["rows"] = rows
    Path(args.out).write_text(json.dumps(record, indent=2))
    print("| method | accuracy (mean ± sd over folds) | macro-F1 | wall time (s) |\n|---|---|---|---|")
    for r in rows:
        f1 = "" if r["macro_f1"] is None else f"{r['macro_f1']:.3f}"
        secs = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
        print(f"| {r['method']} | {100 * r['accuracy']:.2f} % ± {100 * r['sd']:.2f} | {f1} | {secs} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
