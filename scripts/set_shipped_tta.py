"""Store a shipped model's default TTA in its preprocessing (the ONNX file's metadata), in place.

Only the ``ferkit.preprocessing`` metadata entry changes; the graph and weights stay as they are,
which is checked (the same probabilities, bit for bit, on sample faces). The TTA is chosen by
`benchmarks/tta.py` (docs/robustness.md says how).

    python scripts/set_shipped_tta.py default shift+flip
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from ferkit.export.onnx import sample_images
from ferkit.inference.backends import META_PREPROCESSING, OnnxBackend
from ferkit.models.preprocess import TTA_MODES, Preprocessing

ASSETS = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "assets"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=["default", "fast"])
    ap.add_argument("tta", choices=TTA_MODES)
    args = ap.parse_args()
    path = ASSETS / f"{args.name}_model.onnx"
    before = OnnxBackend.from_file(path)
    x = sample_images(before.preprocessing, 32)
    p_before = before.probabilities(x)
    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == META_PREPROCESSING)
    pp = replace(Preprocessing.from_dict(json.loads(entry.value)), tta=args.tta)
    entry.value = json.dumps(pp.to_dict())
    tmp = path.with_name(f".{path.stem}.tmp.onnx")
    onnx.save(model, str(tmp))
    after = OnnxBackend.from_file(tmp)
    assert after.preprocessing == pp and np.array_equal(after.probabilities(x), p_before)
    tmp.replace(path)
    print(f"{path.name}: preprocessing tta = {args.tta} (probabilities unchanged on 32 sample faces)")


if __name__ == "__main__":
    main()
