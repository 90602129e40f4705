"""`ferkit compare`: the papers' backbone-comparison table and figures, measured in one process."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ferkit.errors import FerkitError
from ferkit.evaluation import plots
from ferkit.evaluation.evaluate import Model, load_model, score
from ferkit.evaluation.metrics import compute_metrics
from ferkit.evaluation.report import image_html, table_html, write_html
from ferkit.fileio import atomic_write_text
from ferkit.models.predict import TTA

COLUMNS = [
    "run",
    "model",
    "input",
    "accuracy",
    "macro_f1",
    "params_m",
    "gflops",
    "ms_per_image_b1",
    "ms_per_image_b64",
]


def gflops(run: Model) -> float:
    """Forward-pass GFLOPs for one image (FlopCounterMode counts a multiply-add as 2 FLOPs)."""
    x = torch.zeros(1, run.pp.in_chans, run.pp.input_size, run.pp.input_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        run.torch_model.float().eval()(x)
    return counter.get_total_flops() / 1e9


@torch.inference_mode()
def cpu_latency_ms(run: Model, batch: int, repeats: int = 5) -> float:
    """Median milliseconds per image for the network forward pass at ``batch`` (after a warm-up)."""
    model = run.torch_model.float().eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, run.pp.in_chans, run.pp.input_size, run.pp.input_size).contiguous(
        memory_format=torch.channels_last
    )
    model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / batch


def compare(run_dirs: list[str | os.PathLike], data: str, out: str | os.PathLike, split: str | None = None,
            tta: TTA = "none") -> list[dict]:  # fmt: skip
    """Evaluate each run on the same split; write compare.csv/json, charts and compare.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_model([p]) for p in run_dirs]
    for path, run in zip(run_dirs, runs, strict=True):
        if run.torch_model is None or run.config is None:
            raise FerkitError(f"{path}: compare takes run directories (it reports their config and FLOPs)")
    rows, cms = [], []
    for run in runs:
        used_tta = run.set_tta(tta)
        s = score(run, data, split, used_tta, "none", None)
        used = s.split
        m = compute_metrics(s.probs, s.labels, run.class_names, s.match.present)
        cms.append((run.name, m["confusion_matrix"]))
        rows.append({
            "run": run.name, "model": run.config.model.timm_name, "input": run.pp.input_size,
            "accuracy": m["accuracy"], "macro_f1": m["macro"]["f1"],
            "params_m": sum(p.numel() for p in run.torch_model.parameters()) / 1e6, "gflops": gflops(run),
            "ms_per_image_b1": cpu_latency_ms(run, 1), "ms_per_image_b64": cpu_latency_ms(run, 64),
        })  # fmt: skip
    _write_tables(out, rows)
    names = [r["run"] for r in rows]
    figs = [
        ("Accuracy", plots.bars_png(names, [r["accuracy"] for r in rows], f"Accuracy ({used})", "accuracy",
                                    out / "compare_accuracy.png")),
        ("Macro-F1", plots.bars_png(names, [r["macro_f1"] for r in rows], f"Macro-F1 ({used})", "macro-F1",
                                    out / "compare_macro_f1.png")),
        ("Confusion matrices (row-normalised)",
         plots.confusions_side_by_side(cms, m["labels"], out / "compare_confusion.png",
                                       m["predicted_labels"])),
    ]  # fmt: skip
    histories = [h for r in runs for h in r.history]
    if histories:
        figs.append(
            ("Learning curves", plots.learning_curves_png(histories, out / "compare_learning_curves.png"))
        )
    table = table_html(COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    note = ("<p>Latency: median CPU forward time per image in this process "
            f"({torch.get_num_threads()} threads), batch 1 and 64.</p>")  # fmt: skip
    sections = [("Comparison", table + note)] + [(h, image_html(p, h)) for h, p in figs]
    write_html(
        out / "compare.html", "ferkit model comparison", f"split {used} · TTA {tta} · data {data}", sections
    )
    return rows


def _write_tables(out: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "compare.csv", buf.getvalue())
    atomic_write_text(out / "compare.json", json.dumps(rows, indent=2))
