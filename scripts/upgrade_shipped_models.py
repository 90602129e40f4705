"""Add the embeddings output and the members' specs to the shipped ONNX models, in place.

The shipped files predate both; the members' specs are the recipes' model sections (the model cards
name the recipes). The probabilities are checked to stay exactly equal, and the torch model rebuilt
from the upgraded file (`bundle_from_onnx`) is compared with it on sample faces.

    python scripts/upgrade_shipped_models.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.export.onnx import sample_images, upgrade_onnx
from ferkit.inference.backends import OnnxBackend, TorchBackend
from ferkit.models.factory import load_bundle
from ferkit.models.onnx_weights import bundle_from_onnx
from ferkit.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "ferkit" / "assets"
RECIPES = {
    "default_model.onnx": ["photo_lite0.yaml", "photo_lite1.yaml"],
    "fast_model.onnx": ["fast_lite0_64.yaml"],
}


def main() -> None:
    for name, recipes in RECIPES.items():
        specs = [
            load_config(ROOT / "configs" / r).model.model_copy(update={"pretrained": "none"}) for r in recipes
        ]
        path = ASSETS / name
        upgrade_onnx(path, specs, path)
        onnx_backend = OnnxBackend.from_file(path)
        model, names, pp = load_bundle(bundle_from_onnx(path))
        x = sample_images(pp, 64)
        p_onnx, e_onnx = onnx_backend.outputs(x)
        p_torch, e_torch = TorchBackend(model, names, pp).outputs(x)
        agree = float((p_onnx.argmax(1) == p_torch.argmax(1)).mean())
        print(
            f"{name}: embeddings {e_onnx.shape[1]}-d; rebuilt torch vs ONNX on 64 sample faces: "
            f"max |dp| {np.abs(p_onnx - p_torch).max():.2e}, max |de| {np.abs(e_onnx - e_torch).max():.2e}, "
            f"argmax agreement {agree:.3f}"
        )


if __name__ == "__main__":
    main()
