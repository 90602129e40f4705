"""Training throughput (images/s of full training steps): ferkit vs paper 000 vs the compute ceiling.

  ferkit      the training split held in memory as uint8, batches indexed from a tensor, augmentation
              batched on the device (ferkit.training.augment.augment_batch), channels_last, the
              process tuned with ferkit.runtime.keep_freed_memory — a loop that mirrors
              ferkit.training.engine.Trainer._run_epoch/_train_step step for step.
  paper000    paper 000's pipeline (section III-C): torchvision ImageFolder on the extracted JPEG
              tree, PIL transforms per image, a DataLoader with worker processes; NCHW model.
  paper000-cl diagnostic: paper000's data pipeline, but the model in channels_last and the process
              tuned like ferkit's — separates the data pipeline's cost from the memory-format gain.
  ceiling     forward/backward/AdamW step on one random batch already in memory (channels_last,
              tuned like ferkit): what the model costs with no data pipeline at all.

Every (pipeline, resolution, round) runs in a fresh child process, one after the other (never two
at once), so allocator and thread state cannot leak between pipelines. Rounds alternate the order
(forward, then reversed) to spread slow drift of a shared machine over all pipelines.

    .venv/bin/python benchmarks/train_throughput.py                 # 112 px, 30 steps, 2 rounds
    .venv/bin/python benchmarks/train_throughput.py --sizes 112 224
    .venv/bin/python benchmarks/train_throughput.py --smoke         # seconds: checks that it works
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013-dev.tar.gz"
PAPER_CONFIG = ROOT / "configs" / "fer2013_effb0_paper000.yaml"
PIPELINES = ("ferkit", "paper000", "paper000-cl", "ceiling")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LR, WEIGHT_DECAY, LABEL_SMOOTHING, SEED = 1e-3, 1e-4, 0.1, 42


# ---------------------------------------------------------------------------- child: one measurement
def build(job: dict, channels_last: bool):
    """The model (random init), its preprocessing, loss and AdamW — identical for every pipeline."""
    import torch
    from torch import nn

    from ferkit.models.factory import build_model, resolve_preprocessing
    from ferkit.models.spec import ModelSpec
    from ferkit.training.config import OptimizerSpec
    from ferkit.training.optim import build_optimizer, set_train_mode

    spec = ModelSpec(name=job["model"], pretrained="none", head="linear", input_size=job["size"])
    model = build_model(spec, 7)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    set_train_mode(model)
    pp = resolve_preprocessing(spec, model.backbone, data_channels=1)
    opt = build_optimizer(
        list(model.parameters()), OptimizerSpec(name="adamw", lr=LR, weight_decay=WEIGHT_DECAY)
    )
    return model, pp, nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING), opt


def timed(step, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def run_ferkit(job: dict) -> float:
    """Mirror of Trainer._run_epoch + Trainer._train_step (fp32 on CPU: autocast and scaler disabled)."""
    import numpy as np
    import torch

    from ferkit.data import load_dataset, stratified_subset
    from ferkit.runtime import keep_freed_memory
    from ferkit.training.augment import augment_batch
    from ferkit.training.config import ScheduleSpec, load_config
    from ferkit.training.data import BatchSource
    from ferkit.training.optim import build_scheduler

    keep_freed_memory()
    train = load_dataset(job["data"]).split("train")
    if job["subset"]:
        train = stratified_subset(train, job["subset"], SEED)
    model, pp, criterion, opt = build(job, channels_last=True)
    aug = load_config(job["augment_config"]).augment
    device = torch.device("cpu")
    gen = torch.Generator(device=device)
    gen.manual_seed(SEED * 1000)
    source = BatchSource(train, device, "auto")
    labels = torch.from_numpy(train.labels).to(device)
    bs = job["batch"]
    steps_per_epoch = max(1, len(train) // bs)
    sched, _ = build_scheduler(opt, ScheduleSpec(name="cosine"), LR, steps_per_epoch, 1, True)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    orders = (np.random.default_rng([SEED, 0, e]).permutation(len(train)) for e in itertools.count())
    batches = (o[s * bs : (s + 1) * bs] for o in orders for s in range(steps_per_epoch))
    loss_sum = torch.tensor(0.0, dtype=torch.float64)
    correct = torch.tensor(0, dtype=torch.int64)

    def step() -> None:
        nonlocal loss_sum, correct
        idx = next(batches)
        images, y = source.get(idx), labels[torch.from_numpy(idx).to(device)]
        x = augment_batch(images, aug, pp, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float32, enabled=False):
            logits = model(x)
        loss = criterion(logits.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
        loss_sum += loss.detach().double() * len(idx)
        correct += (logits.argmax(1) == y).sum()
        float(loss_sum.item()), int(correct.item())  # the engine logs these every step

    return timed(step, job["warmup"], job["steps"])


def paper_transform(size: int):
    """Paper 000, III-C 1): the training transforms, scaled from 256→224 to the benchmark size."""
    from torchvision import transforms as T

    return T.Compose([
        T.Grayscale(num_output_channels=3),
        T.Resize(round(size * 256 / 224)),
        T.RandomCrop(size),
        T.RandomHorizontalFlip(),
        T.RandomRotation(15),
        T.RandomApply([T.ColorJitter(0.2, 0.2, 0.2)], p=0.5),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        T.RandomErasing(p=0.25, scale=(0.02, 0.1)),
    ])  # fmt: skip


def paper_batches(job: dict) -> Iterator:
    """Endless (images, labels) batches from ImageFolder + DataLoader (a new epoch when one ends)."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets

    ds = datasets.ImageFolder(job["folder"], transform=paper_transform(job["size"]))
    if job["subset"]:
        pick = np.random.default_rng(SEED).choice(len(ds), min(job["subset"], len(ds)), replace=False)
        ds = Subset(ds, pick.tolist())
    loader = DataLoader(
        ds, batch_size=job["batch"], shuffle=True, num_workers=job["workers"], pin_memory=False,
        drop_last=True, generator=torch.Generator().manual_seed(SEED),
    )  # fmt: skip
    while True:
        yield from loader


def run_paper(job: dict, channels_last: bool) -> float:
    """Paper 000's loop: batch from the loader, forward, loss, zero_grad, backward, step (fp32 on CPU)."""
    import torch

    if channels_last:
        from ferkit.runtime import keep_freed_memory

        keep_freed_memory()
    model, _, criterion, opt = build(job, channels_last)
    batches = paper_batches(job)

    def step() -> None:
        x, y = next(batches)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = criterion(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()

    return timed(step, job["warmup"], job["steps"])


def run_ceiling(job: dict) -> float:
    """Forward/backward/step on one random batch that is already normalised and in memory."""
    import torch

    from ferkit.runtime import keep_freed_memory

    keep_freed_memory()
    model, _, criterion, opt = build(job, channels_last=True)
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(job["batch"], 3, job["size"], job["size"], generator=gen)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (job["batch"],), generator=gen)

    def step() -> None:
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    return timed(step, job["warmup"], job["steps"])


def child(job: dict) -> None:
    """Run one measurement and print its result as one JSON line."""
    import torch

    torch.set_num_threads(job["threads"])
    runners = {
        "ferkit": lambda: run_ferkit(job),
        "paper000": lambda: run_paper(job, channels_last=False),
        "paper000-cl": lambda: run_paper(job, channels_last=True),
        "ceiling": lambda: run_ceiling(job),
    }
    seconds = runners[job["pipeline"]]()
    images = job["steps"] * job["batch"]
    print(json.dumps({"seconds": seconds, "images": images, "images_per_s": images / seconds}))


# ---------------------------------------------------------------------------- parent: orchestration
def extract_train(archive: Path, into: Path) -> Path:
    """Extract the archive's train/ tree (JPEGs in class folders) and return that folder."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/train/" in f"/{m.name}"]
        tar.extractall(into, members=members, filter="data")
    found = sorted(p for p in into.rglob("train") if p.is_dir())
    if not found:
        raise SystemExit(f"{archive}: no train/ folder inside")
    return found[0]


def measure(job: dict) -> dict:
    """One measurement in a fresh child process."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{job['pipeline']} @ {job['size']} px failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def schedule(args: argparse.Namespace) -> list[tuple[int, int, str]]:
    """(size, round, pipeline) in run order: each round alternates forward/reversed pipeline order."""
    out = []
    for size in args.sizes:
        for r in range(args.rounds):
            order = args.pipelines if r % 2 == 0 else list(reversed(args.pipelines))
            out += [(size, r, p) for p in order]
    return out


def summarise(results: list[dict], pipelines: list[str], sizes: list[int]) -> list[dict]:
    """Mean images/s over rounds per (pipeline, size), with ratios against paper000 and the ceiling."""
    rows = []
    for size in sizes:
        mean = {
            p: statistics.fmean(
                r["images_per_s"] for r in results if r["pipeline"] == p and r["size"] == size
            )
            for p in pipelines
        }
        for p in pipelines:
            runs = [r["images_per_s"] for r in results if r["pipeline"] == p and r["size"] == size]
            rows.append({
                "pipeline": p, "size": size, "images_per_s": mean[p], "min": min(runs), "max": max(runs),
                "vs_paper000": mean[p] / mean["paper000"] if "paper000" in mean else None,
                "vs_ceiling": mean[p] / mean["ceiling"] if "ceiling" in mean else None,
            })  # fmt: skip
    return rows


def fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| pipeline | resolution | images/s (mean) | min–max over rounds | × paper000 | ÷ ceiling |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pipeline']} | {r['size']} px | {r['images_per_s']:.1f} | {r['min']:.1f}–{r['max']:.1f} "
            f"| {fmt(r['vs_paper000'], '.2f')} | {fmt(r['vs_ceiling'], '.2f')} |"
        )
    return "\n".join(lines)


def settings(args: argparse.Namespace) -> str:
    import torch
    import torchvision

    return (
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}; model {args.model} (random init, linear head, 7 classes), "
        f"batch {args.batch}, fp32, AdamW lr {LR} wd {WEIGHT_DECAY}, label smoothing {LABEL_SMOOTHING}; "
        f"torch threads {args.threads}, DataLoader workers {args.workers} (paper000*); "
        f"{args.warmup} warm-up + {args.steps} timed steps per measurement, {args.rounds} round(s), "
        f"each measurement in a fresh process, run one after another; "
        f"data {args.data} train split{f', subset {args.subset}' if args.subset else ''}; "
        f"load average (1/5/15 min) at the end {load_average()}."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed training steps per measurement (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--sizes", type=int, nargs="+", default=[112], help="input resolutions (default 112)")
    p.add_argument("--model", default="tf_efficientnet_lite0", help="timm architecture (default lite0)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FER2013 folder-release archive")
    p.add_argument("--subset", type=int, default=None, help="use this many training images (default all)")
    p.add_argument("--rounds", type=int, default=2, help="repeat every measurement, alternating order")
    p.add_argument("--threads", type=int, default=2, help="torch threads in the training process")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes for paper000")
    p.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    p.add_argument(
        "--augment-config", type=Path, default=PAPER_CONFIG,
        help="ferkit config whose augment section ferkit's pipeline uses (default: paper 000's)",
    )  # fmt: skip
    p.add_argument("--smoke", action="store_true", help="tiny run to check it works: 3 steps, 256 images")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.rounds, args.subset = 3, 1, 1, args.subset or 256
    return args


def run_all(args: argparse.Namespace) -> list[dict]:
    """Every measurement of the schedule, each in its own child process; progress on stdout."""
    from ferkit.data import load_dataset

    load_dataset(args.data, progress=True)  # decode once into ferkit's cache, outside any timing
    results = []
    with tempfile.TemporaryDirectory(prefix="ferkit-bench-") as tmp:
        needs_folder = any(p.startswith("paper") for p in args.pipelines)
        folder = extract_train(args.data, Path(tmp)) if needs_folder else None
        keys = ("model", "batch", "steps", "warmup", "subset", "threads", "workers")
        base = {k: getattr(args, k) for k in keys}
        base |= {"data": str(args.data), "folder": str(folder), "augment_config": str(args.augment_config)}
        for size, rnd, pipeline in schedule(args):
            res = measure(base | {"pipeline": pipeline, "size": size})
            results.append({"pipeline": pipeline, "size": size, "round": rnd, **res})
            print(
                f"  round {rnd + 1} {pipeline:12s} {size:4d} px {res['images_per_s']:7.1f} img/s", flush=True
            )
    return results


def ratio_lines(rows: list[dict], sizes: list[int]) -> list[str]:
    out = []
    for size in sizes:
        by = {r["pipeline"]: r["images_per_s"] for r in rows if r["size"] == size}
        parts = [f"ferkit / {p} = {by['ferkit'] / by[p]:.2f}" for p in by if p != "ferkit" and "ferkit" in by]
        out.append(f"{size} px: " + "; ".join(parts))
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return
    print(f"load average (1/5/15 min) before: {load_average()}")
    results = run_all(args)
    rows = summarise(results, args.pipelines, args.sizes)
    print(f"\nSettings: {settings(args)}\n\n{markdown(rows)}\n\n" + "\n".join(ratio_lines(rows, args.sizes)))
    if args.json:
        report = {"settings": settings(args), "results": results, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
