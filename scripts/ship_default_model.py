"""Ship a finished run as the package's default model: fp16 weights + a model card with measured metrics.

    .venv/bin/python scripts/ship_default_model.py /work/runs/fer2013_cpu_lite0 \
        --data ../shared/data/fer2013-dev.tar.gz --split test

Evaluates the run's best checkpoint on the given split with and without flip TTA (through the
shipped fp16 weights, so the card describes exactly what users get) and writes
src/ferkit/assets/default_model.pt (fp16, for torch users, Grad-CAM and fine-tuning),
src/ferkit/assets/default_model.onnx (what `Recognizer.default()` loads: no torch needed) and
src/ferkit/assets/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from ferkit.evaluation.evaluate import evaluate
from ferkit.export.onnx import ExportReport, export_onnx
from ferkit.fileio import atomic_write_text
from ferkit.training.checkpoint import atomic_save

ASSETS = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "assets"


def fp16_bundle(run: Path) -> dict:
    """The best checkpoint's model bundle with floating-point tensors stored as fp16 (half the size)."""
    ckpt = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)
    bundle = ckpt["model"]
    bundle["state_dict"] = {
        k: v.half() if v.is_floating_point() else v for k, v in bundle["state_dict"].items()
    }
    bundle["source"] = {"run": run.name, "epoch": ckpt["epoch"], "selection": ckpt["metrics"]}
    return bundle


def shipped_run_dir(run: Path, bundle: dict, where: Path) -> Path:
    """A run directory whose best.pt is the fp16 bundle, so evaluation measures the shipped weights."""
    (where / "checkpoints").mkdir(parents=True)
    atomic_save(
        {"model": bundle, "epoch": bundle["source"]["epoch"], "metrics": {}}, where / "checkpoints/best.pt"
    )
    for name in ("config.yaml", "metrics.csv", "data.json"):
        (where / name).write_bytes((run / name).read_bytes())
    return where


def card(run: Path, bundle: dict, results: dict[str, dict], size_mb: float, onnx: ExportReport) -> str:
    m0, m1 = results["none"], results["flip"]
    names = m0["labels"]
    per_class = "\n".join(
        f"| {c} | {m1['per_class'][c]['precision']:.3f} | {m1['per_class'][c]['recall']:.3f} | "
        f"{m1['per_class'][c]['f1']:.3f} | {m1['per_class'][c]['support']} |"
        for c in names
    )
    cm = "\n".join(f"| {c} | " + " | ".join(str(v) for v in row) + " |"
                   for c, row in zip(names, m1["confusion_matrix"], strict=True))  # fmt: skip
    pp = bundle["preprocessing"]
    acc = onnx.accuracy or {}
    data = json.loads((run / "data.json").read_text())
    sel = bundle["source"]["selection"]
    return f"""# ferkit default model — model card

**Architecture**: `{bundle["spec"]["name"]}` (EfficientNet-Lite0, ImageNet-initialised) with a
Dropout({bundle["spec"]["dropout"]}) → Dense(7) head; {pp["input_size"]} px input, grayscale replicated
to 3 channels, mean/std {pp["mean"][0]}/{pp["std"][0]}. Weights stored in fp16 ({size_mb:.1f} MB), computed
in fp32.

**Data**: FER2013 (the folder release in `fer2013-dev.tar.gz`): trained on Training
({data["train"]} images after dropping {data.get("dropped_from_training", 0)} training images that duplicate
a PublicTest image or carry conflicting labels), model selection on PublicTest (epoch
{bundle["source"]["epoch"]} of the run, best PublicTest accuracy with flip TTA: {sel.get("val_acc", 0):.4f}).
PrivateTest was not available here (withheld as the hidden test set), so **every number below is
on PublicTest, the split used for selection, and is therefore optimistic** by the usual
selection bias.

**Recipe**: `configs/fer2013_cpu_lite0.yaml` — trained on a 2-core CPU without GPU.

**Files**: `default_model.onnx` ({onnx.path.stat().st_size / 1e6:.1f} MB, fp32, loaded by
`Recognizer.default()` and `ferkit demo`; max |p_onnx − p_torch| {onnx.max_diff_fp32:.1e} on
{onnx.samples} sample faces; accuracy on {onnx.split} {onnx.split_size} images: torch
{acc["torch"]:.4f}, ONNX {acc["onnx_fp32"]:.4f})
and `default_model.pt` (the same weights in fp16 for torch: `ferkit.models.factory.load_checkpoint`).

## Metrics on FER2013 PublicTest (n = {m0["n"]})

| TTA | accuracy | macro-F1 | weighted-F1 | ECE |
|---|---|---|---|---|
| none | {m0["accuracy"]:.4f} | {m0["macro"]["f1"]:.4f} | {m0["weighted"]["f1"]:.4f} | {m0["ece"]:.4f} |
| flip | {m1["accuracy"]:.4f} | {m1["macro"]["f1"]:.4f} | {m1["weighted"]["f1"]:.4f} | {m1["ece"]:.4f} |

Per class (flip TTA):

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

Confusion matrix (flip TTA; rows = true, columns = predicted, order {", ".join(names)}):

| true ↓ predicted → | {" | ".join(names)} |
|---|{"---|" * len(names)}
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
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--assets", type=Path, default=ASSETS, help="where to write (default: the package)")
    args = ap.parse_args()
    bundle = fp16_bundle(args.run)
    args.assets.mkdir(exist_ok=True)
    target = args.assets / "default_model.pt"
    atomic_save({"model": bundle}, target)
    onnx = export_onnx(target, args.assets / "default_model.onnx", data=args.data, split=args.split)
    print("\n".join(onnx.lines()))
    with tempfile.TemporaryDirectory() as tmp:
        shipped = shipped_run_dir(args.run, bundle, Path(tmp) / args.run.name)
        results = {
            tta: evaluate([shipped], args.data, args.run / f"eval-shipped-{tta}", args.split, tta)  # type: ignore[arg-type]
            for tta in ("none", "flip")
        }
    atomic_write_text(
        args.assets / "MODEL_CARD.md", card(args.run, bundle, results, target.stat().st_size / 1e6, onnx)
    )
    for tta, m in results.items():
        print(
            f"{args.split} tta={tta}: accuracy {m['accuracy']:.4f} macro-F1 {m['macro']['f1']:.4f} "
            f"ECE {m['ece']:.4f}"
        )
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) and {args.assets / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
