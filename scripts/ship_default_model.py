"""Ship finished runs as the package's default model: fp16 weights + a model card with measured metrics.

    .venv/bin/python scripts/ship_default_model.py /work/runs/fer2013_cpu_lite2 \
        --data ../shared/data/fer2013-dev.tar.gz --split test

Several runs are shipped as one ensemble (the mean of their probabilities, one ONNX graph).
Evaluates the shipped weights on the given split with and without flip TTA (so the card describes
exactly what users get) and writes into src/ferkit/assets/:
  default_model.onnx  what `Recognizer.default()` loads (fp16-stored, fp32 compute; no torch needed)
  default_model.pt    the same weights in fp16 for torch (Grad-CAM, fine-tuning), if both files fit
                      in --max-mb together; otherwise it is left out and the card says so
  MODEL_CARD.md
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


def card(
    runs: list[Path],
    bundles: list[ModelBundle],
    results: dict[str, dict],
    onnx: ExportReport,
    pt_mb: float | None,
) -> str:
    m0, m1 = results["none"], results["flip"]
    per_class, cm = tables(m1)
    pp = bundles[0].preprocessing.to_dict()
    acc = onnx.accuracy or {}
    data = json.loads((runs[0] / "data.json").read_text())
    members = "\n".join(f"- {describe(r, b)}" for r, b in zip(runs, bundles, strict=True))
    kind = "one model" if len(runs) == 1 else f"the mean probability of {len(runs)} models (an ensemble)"
    pt_text = (
        f"`default_model.pt` ({pt_mb:.1f} MB, the same weights in fp16 for torch: "
        "`ferkit.models.factory.load_checkpoint`, `Recognizer.from_run`)"
        if pt_mb is not None
        else "no torch checkpoint (it would not fit the package's size budget beside the ONNX file; "
        "the training runs' checkpoints are the torch version)"
    )
    return f"""# ferkit default model — model card

**Architecture**: {kind}:
{members}

Input {pp["input_size"]} px, grayscale replicated to 3 channels, mean/std {pp["mean"][0]}/{pp["std"][0]},
{pp["interpolation"]} resize. Weights stored in fp16, computed in fp32.

**Data**: FER2013 (the folder release in `fer2013-dev.tar.gz`): trained on Training
({data["train"]} images after dropping {data.get("dropped_from_training", 0)} training images that
duplicate a PublicTest image or carry conflicting labels), model selection on PublicTest (best
PublicTest accuracy with flip TTA over the epochs of each run). PrivateTest was not available here
(withheld as the hidden test set), so **every number below is on PublicTest, the split used for
selection, and is therefore optimistic** by the usual selection bias.

**Training**: on a 2-core CPU without GPU.

**Files**: `default_model.onnx` ({onnx.path.stat().st_size / 1e6:.1f} MB, loaded by
`Recognizer.default()` and `ferkit demo`; max |p_onnx − p_torch| {onnx.max_diff_stored:.1e} on
{onnx.samples} sample faces; accuracy on {onnx.split} ({onnx.split_size} images), no TTA: torch
{acc["torch"]:.4f}, ONNX {acc["onnx_fp16"]:.4f}) and {pt_text}.
`Recognizer.default()` and the CLI apply flip TTA to this model (the "flip" row below);
`rec.tta = "none"` / `--tta none` gives the "none" row at half the compute.

## Metrics on FER2013 PublicTest (n = {m0["n"]})

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

## Intended use and limitations

- Recognises the seven FER2013 categories on a **single, roughly frontal face crop**; use a face
  detector first on whole photos (`ferkit predict` does).
- FER2013 was collected by web image search: faces skew young, white and western, many are posed
  or stock photos, and roughly one label in ten is disputed (FER+ relabelling). Expect lower and
  uneven accuracy on other populations, on spontaneous expressions, on profiles, low light and
  occlusions, and for the rare classes (disgust, fear).
- Facial expressions are not emotions: a scowl is not proof of anger. **Do not use this model
  for high-stakes decisions about people** (hiring, policing, education, health, border control),
  nor to infer emotions of people who have not consented.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="run directories (several: one ensemble)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--assets", type=Path, default=ASSETS, help="where to write (default: the package)")
    ap.add_argument("--max-mb", type=float, default=25.0, help="size budget of the shipped model files")
    args = ap.parse_args()
    bundles = [fp16_bundle(r) for r in args.runs]
    bundle = bundles[0] if len(bundles) == 1 else ensemble_bundle(bundles, [str(r) for r in args.runs])
    args.assets.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / "default_model.pt"
        atomic_save({"model": bundle.to_dict()}, pt)
        onnx = export_onnx(pt, args.assets / "default_model.onnx", "fp16", data=args.data, split=args.split)
        print("\n".join(onnx.lines()))
        shipped = [shipped_run_dir(r, b, Path(tmp) / r.name) for r, b in zip(args.runs, bundles, strict=True)]
        results = {
            tta: evaluate(shipped, args.data, args.runs[0] / f"eval-shipped-{tta}", args.split, tta)  # type: ignore[arg-type]
            for tta in ("none", "flip")
        }
        pt_mb = pt.stat().st_size / 1e6
        fits = pt_mb + onnx.path.stat().st_size / 1e6 <= args.max_mb
        target = args.assets / "default_model.pt"
        if fits:
            shutil.copyfile(pt, target)
        else:
            target.unlink(missing_ok=True)
            print(f"default_model.pt ({pt_mb:.1f} MB) left out: ONNX + .pt would exceed {args.max_mb} MB")
    card_text = card(args.runs, bundles, results, onnx, pt_mb if fits else None)
    atomic_write_text(args.assets / "MODEL_CARD.md", card_text)
    for tta, m in results.items():
        print(
            f"{args.split} tta={tta}: accuracy {m['accuracy']:.4f} macro-F1 {m['macro']['f1']:.4f} "
            f"ECE {m['ece']:.4f}"
        )
    files = sorted(args.assets.glob("default_model.*"))
    print(f"wrote {args.assets}: " + ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in files))


if __name__ == "__main__":
    main()
