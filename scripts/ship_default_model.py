"""Ship finished runs as one of the package's models, with a model card built from measured outputs.

    .venv/bin/python scripts/ship_default_model.py runs/photo_lite0 runs/photo_lite1 runs/photo_lite2 \
        --name default --weights int8 --data ../shared/data/fer2013-dev.tar.gz --split test \
        --wild cross.json --trained-on "one NVIDIA H100 (GPU-measured), six runs at once"
    .venv/bin/python scripts/ship_default_model.py runs/fast_lite0_64 --name fast --weights int8 ...

Several runs are shipped as one ensemble (the mean of their probabilities, one ONNX graph). The
shipped ONNX file itself is evaluated on the given split with and without flip TTA (so the card
describes exactly what users get), and `--wild` adds the cross-dataset results of
benchmarks/cross_dataset.py (its --json output; the row named like --name, or --wild-row).
Writes into src/ferkit/assets/:
  {name}_model.onnx   what `Recognizer.default(name)` loads (no torch needed): fp16-stored weights
                      computed in fp32, or static int8 (QDQ) calibrated on the data's training split
  {name}_model.pt     the weights in fp16 for torch (Grad-CAM, fine-tuning), if both files fit in
                      --max-mb together; otherwise it is left out and the card says so
  MODEL_CARD.md (default) / MODEL_CARD_{name}.md (others)
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from pathlib import Path

from ferkit.evaluation.evaluate import evaluate
from ferkit.export.onnx import ExportReport, export_onnx
from ferkit.fileio import atomic_write_text
from ferkit.models.bundle import ModelBundle
from ferkit.models.ensemble import ensemble_bundle
from ferkit.models.factory import checkpoint_file, read_bundle, read_model_file
from ferkit.training.checkpoint import atomic_save

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "ferkit" / "assets"


def fp16_bundle(run: Path) -> ModelBundle:
    """The best checkpoint's model bundle with floating-point tensors stored as fp16 (half the size)."""
    ckpt = read_model_file(checkpoint_file(run))
    bundle = read_bundle(run)
    bundle.state_dict = {k: v.half() if v.is_floating_point() else v for k, v in bundle.state_dict.items()}
    bundle.source = {"run": run.name, "epoch": ckpt["epoch"], "selection": ckpt["metrics"]}
    return bundle


def shipped_run_dir(run: Path, bundle: ModelBundle, where: Path) -> Path:
    """A run directory whose best.pt is the fp16 bundle, so evaluation measures the shipped weights."""
    (where / "checkpoints").mkdir(parents=True)
    atomic_save(
        {"model": bundle.to_dict(), "epoch": bundle.source["epoch"], "metrics": {}},
        where / "checkpoints/best.pt",
    )
    for name in ("config.yaml", "metrics.csv", "data.json"):
        (where / name).write_bytes((run / name).read_bytes())
    return where


def describe(run: Path, bundle: ModelBundle) -> str:
    """One member: architecture, head, recipe file and the epoch selected."""
    spec, src = bundle.spec, bundle.source
    recipe = ROOT / "configs" / f"{run.name}.yaml"
    recipe_text = f"`configs/{recipe.name}`" if recipe.is_file() else f"the run's `config.yaml` ({run.name})"
    with (run / "metrics.csv").open() as fh:
        epochs = list(csv.DictReader(fh))
    minutes = sum(float(e["seconds"]) for e in epochs) / 60
    return (
        f"`{spec.name}` (ImageNet-initialised) + Dropout({spec.dropout}) → Dense head, recipe "
        f"{recipe_text}: {len(epochs)} epochs, {minutes:.0f} min of training epochs; epoch "
        f"{src['epoch']} selected (PublicTest accuracy with flip TTA: "
        f"{src['selection'].get('val_acc', 0):.4f})"
    )


def tables(m: dict) -> tuple[str, str]:
    """Per-class table and confusion matrix (markdown) of one evaluation."""
    names = m["labels"]
    per_class = "\n".join(
        f"| {c} | {m['per_class'][c]['precision']:.3f} | {m['per_class'][c]['recall']:.3f} | "
        f"{m['per_class'][c]['f1']:.3f} | {m['per_class'][c]['support']} |"
        for c in names
    )
    cm = "\n".join(f"| {c} | " + " | ".join(str(v) for v in row) + " |"
                   for c, row in zip(names, m["confusion_matrix"], strict=True))  # fmt: skip
    header = f"| true ↓ predicted → | {' | '.join(names)} |\n|---|{'---|' * len(names)}\n"
    return per_class, header + cm


def wild_section(path: Path | None, row: str) -> str:
    """The cross-dataset table of benchmarks/cross_dataset.py (--json): every candidate measured in
    that run, the shipped one marked; per-class recall on the wild photos for the shipped one."""
    if path is None:
        return "Not measured for this card (ship with --wild CROSS.json from benchmarks/cross_dataset.py).\n"
    run = json.loads(path.read_text())
    res = run["results"]
    if row not in res:
        raise SystemExit(f"{path}: no row {row!r} (it has {sorted(res)}); pass --wild-row")
    lines = [
        f"Measured by `benchmarks/cross_dataset.py` in one run (TTA {run['tta']}, load average "
        f"{run['load']}). FER2013 PublicTest: 3,589 crops. wild-val: the held-back half of the muxspace "
        "photos (`ferkit.data.wild_halves`, never trained on) through `ferkit predict`'s path (YuNet, "
        "largest face, square crop); a photo without a detected face counts as wrong.",
        "",
        "| model | PublicTest accuracy | PublicTest macro-F1 | wild-val accuracy | wild-val macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for name, r in res.items():
        mark = " **(shipped)**" if name == row else ""
        f, w = r["fer2013-public"], r["wild-val"]
        lines.append(f"| {name}{mark} | {f['accuracy']:.4f} | {f['macro_f1']:.4f} | {w['accuracy']:.4f} | "
                     f"{w['macro_f1']:.4f} |")  # fmt: skip
    recall, public = res[row]["wild-val"]["recall"], res[row]["fer2013-public"]["recall"]
    lines += ["", "Recall per class of the shipped model:", "",
              "| split | " + " | ".join(recall) + " |", "|---|" + "---|" * len(recall),
              "| wild-val | " + " | ".join(f"{v:.2f}" for v in recall.values()) + " |",
              "| PublicTest | " + " | ".join(f"{v:.2f}" for v in public.values()) + " |"]  # fmt: skip
    return "\n".join(lines) + "\n"


def card(args: argparse.Namespace, bundles: list[ModelBundle], results: dict, onnx: ExportReport,
         pt_mb: float | None) -> str:  # fmt: skip
    """The model card: members, data, preprocessing, files, measured metrics, limitations."""
    m0, m1 = results["none"], results["flip"]
    per_class, cm = tables(m1)
    pp = bundles[0].preprocessing.to_dict()
    acc = onnx.accuracy or {}
    data = json.loads((args.runs[0] / "data.json").read_text())
    members = "\n".join(f"- {describe(r, b)}" for r, b in zip(args.runs, bundles, strict=True))
    kind = (
        "one model"
        if len(args.runs) == 1
        else f"the mean probability of {len(args.runs)} models (an ensemble)"
    )
    file = f"{args.name}_model"
    pt_text = (
        f"`{file}.pt` ({pt_mb:.1f} MB, the same weights in fp16 for torch: "
        "`ferkit.models.factory.load_checkpoint`, `Recognizer.from_run`)"
        if pt_mb is not None
        else "no torch checkpoint (it would not fit the package's size budget beside the ONNX file; "
        "the training runs' checkpoints are the torch version)"
    )
    stored = {
        "fp16": "stored in fp16, computed in fp32",
        "int8": "static int8 (QDQ, per-channel weights, activations calibrated on 512 training faces)",
    }
    tta = "flip" if args.name == "default" else "none"
    diff = onnx.max_diff_stored if onnx.max_diff_stored is not None else onnx.max_diff_fp32
    return (
        f"""# ferkit `{args.name}` model — model card

**Architecture**: {kind}:
{members}

**Preprocessing** (stored in the ONNX file's metadata, applied identically by every entry point):
`{json.dumps(pp)}` — the face crop (from the detector: square, margin 0.2 of the box side) is
converted to gray ({pp["data_channels"]} channel(s), the training data's form), resized to
{pp["input_size"]} px ({pp["interpolation"]}), replicated to {pp["in_chans"]} channels and normalised with
mean/std {pp["mean"][0]}/{pp["std"][0]}. Weights {stored[args.weights]}.

**Data**: `{Path(str(data.get("source"))).name}`: FER2013 Training plus face crops of the training half of the
muxspace photos (`scripts/build_wild_training_set.py`) — {data.get("train")} training images after
dropping {data.get("dropped_from_training", 0)} that duplicate a PublicTest image or carry
conflicting labels — with model selection on FER2013 PublicTest (best PublicTest accuracy with flip
TTA over each run's epochs). PrivateTest is withheld here (the hidden test set), so **every
PublicTest number below is on the split used for selection, and is therefore optimistic**.

**Training**: {args.trained_on}.

**Files**: `{file}.onnx` ({onnx.path.stat().st_size / 1e6:.1f} MB, loaded by
`Recognizer.default("{args.name}")`; max |p_onnx − p_torch| {diff:.1e} on
{onnx.samples} sample faces; accuracy on {onnx.split} ({onnx.split_size} images), no TTA: """
        + ", ".join(f"{k} {v:.4f}" for k, v in acc.items())
        + f""") and {pt_text}.
`Recognizer.default("{args.name}")` and the CLI apply {tta} TTA to this model; `--tta none|flip` overrides it.
Outputs: `probabilities` and `embeddings` (the penultimate features, `Recognizer.embeddings`); the
members' specs in the metadata let `ferkit adapt` and `model.pretrained: ferkit:{args.name}` rebuild
the torch weights from this file (`ferkit.models.onnx_weights`).

## Metrics on FER2013 PublicTest (n = {m0["n"]}), the shipped ONNX file

| TTA | accuracy | macro-F1 | weighted-F1 | ECE |
|---|---|---|---|---|
| none | {m0["accuracy"]:.4f} | {m0["macro"]["f1"]:.4f} | {m0["weighted"]["f1"]:.4f} | {m0["ece"]:.4f} |
| flip | {m1["accuracy"]:.4f} | {m1["macro"]["f1"]:.4f} | {m1["weighted"]["f1"]:.4f} | {m1["ece"]:.4f} |

Per class (flip TTA):

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

Confusion matrix (flip TTA; rows = true, columns = predicted):

{cm}

## Real photos (cross-dataset) and the candidates tried

{wild_section(args.wild, args.wild_row or args.name)}
{args.notes.read_text() if args.notes else ""}
## Intended use and limitations

- Recognises the seven FER2013 categories on a **single, roughly frontal face**; on whole photos
  use a face detector first (`ferkit predict` does).
- FER2013 was collected by web image search: faces skew young, white and western, many are posed
  or stock photos, and roughly one label in ten is disputed (FER+ relabelling); the muxspace photos
  added for robustness are student-labelled and noisy. Expect lower and uneven accuracy on other
  populations, on spontaneous expressions, profiles, low light and occlusions, and for the rare
  classes (disgust, fear).
- Facial expressions are not emotions: a scowl is not proof of anger. **Do not use this model
  for high-stakes decisions about people** (hiring, policing, education, health, border control),
  nor to infer emotions of people who have not consented.
"""
    )


def write_card(args: argparse.Namespace, bundles: list[ModelBundle], results: dict, onnx: ExportReport,
               pt_mb: float | None) -> None:  # fmt: skip
    name = "MODEL_CARD.md" if args.name == "default" else f"MODEL_CARD_{args.name}.md"
    atomic_write_text(args.assets / name, card(args, bundles, results, onnx, pt_mb))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="run directories (several: one ensemble)")
    ap.add_argument("--name", default="default", choices=["default", "fast"], help="which shipped model")
    ap.add_argument("--weights", default="fp16", choices=["fp16", "int8"], help="how the ONNX stores weights")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--wild", type=Path, default=None, help="benchmarks/cross_dataset.py --json output")
    ap.add_argument("--wild-row", default=None, help="the shipped model's row in --wild (default: --name)")
    ap.add_argument(
        "--notes", type=Path, default=None, help="markdown: what was tried (measured), for the card"
    )
    ap.add_argument("--trained-on", default="a 2-core CPU without GPU", help="hardware, for the card")
    ap.add_argument("--assets", type=Path, default=ASSETS, help="where to write (default: the package)")
    ap.add_argument("--max-mb", type=float, default=25.0, help="size budget of this model's files")
    ap.add_argument("--card-only", action="store_true",
                    help="rewrite the card from saved measurements (e.g. new --wild)")  # fmt: skip
    args = ap.parse_args()
    bundles = [fp16_bundle(r) for r in args.runs]
    measured = args.runs[0] / f"shipped-{args.name}.json"  # what this script measured, to rebuild the card
    if args.card_only:
        saved = json.loads(measured.read_text())
        onnx = ExportReport(**(saved["onnx"] | {"path": args.assets / f"{args.name}_model.onnx"}))
        write_card(args, bundles, saved["results"], onnx, saved["pt_mb"])
        return
    bundle = bundles[0] if len(bundles) == 1 else ensemble_bundle(bundles, [str(r) for r in args.runs])
    args.assets.mkdir(exist_ok=True)
    file = f"{args.name}_model"
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / f"{file}.pt"
        atomic_save({"model": bundle.to_dict()}, pt)
        onnx = export_onnx(pt, args.assets / f"{file}.onnx", args.weights, data=args.data, split=args.split)
        print("\n".join(onnx.lines()))
        results = {
            tta: evaluate([onnx.path], args.data, args.runs[0] / f"eval-shipped-{tta}", args.split, tta)
            for tta in ("none", "flip")
        }
        pt_mb = pt.stat().st_size / 1e6
        fits = pt_mb + onnx.path.stat().st_size / 1e6 <= args.max_mb
        target = args.assets / f"{file}.pt"
        if fits:
            shutil.copyfile(pt, target)
        else:
            target.unlink(missing_ok=True)
            print(f"{file}.pt ({pt_mb:.1f} MB) left out: ONNX + .pt would exceed {args.max_mb} MB")
    saved = {"onnx": {k: v for k, v in vars(onnx).items() if k != "path"}, "results": results,
             "pt_mb": pt_mb if fits else None}  # fmt: skip
    atomic_write_text(measured, json.dumps(saved, indent=2))
    write_card(args, bundles, results, onnx, pt_mb if fits else None)
    for tta, m in results.items():
        print(
            f"{args.split} tta={tta}: accuracy {m['accuracy']:.4f} macro-F1 {m['macro']['f1']:.4f} "
            f"ECE {m['ece']:.4f}"
        )
    files = sorted(args.assets.glob(f"{file}.*"))
    print(f"wrote {args.assets}: " + ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in files))


if __name__ == "__main__":
    main()
