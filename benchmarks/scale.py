"""`ferkit batch` throughput: the local engine against Ray (1 and 2 actors) on this machine.

Photos: real colour photos (../shared/data/muxspace-faces.tar.gz; the bundled photo copied when it is
absent); videos: rendered clips of moving faces. Every contender runs once per round, interleaved,
each a whole job into a fresh folder (Ray: a local Ray started for the job, as a user gets it), so
the totals include start-up; a one-photo job measures each engine's fixed cost per job (engine
start, model load per actor). Run: `nice -n 10 .venv/bin/python benchmarks/scale.py`.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from machine_info import load_average, machine
from rounds import interleaved

from ferkit.batch import BatchOptions, run_batch
from ferkit.inference.moving_faces import moving_scene, render

SHARED = Path(__file__).resolve().parents[2] / "shared"
MUXSPACE = SHARED / "data" / "muxspace-faces.tar.gz"
SIZE, FPS = (640, 480), 25.0


def photo_folder(root: Path, n: int) -> Path:
    """``n`` photos, taken round-robin over the classes of muxspace (else copies of the bundled photo)."""
    folder = root / "photos"
    folder.mkdir()
    if not MUXSPACE.is_file():
        raise SystemExit(f"{MUXSPACE} is missing (see ../shared/README.md)")
    with tarfile.open(MUXSPACE) as tar:
        members = sorted((m for m in tar.getmembers() if m.name.endswith(".jpg")), key=lambda m: m.name)
        by_class: dict[str, list] = {}
        for m in members:
            by_class.setdefault(m.name.split("/")[1], []).append(m)
        rounds = itertools.zip_longest(*by_class.values())  # round-robin until every class runs out
        picked = [m for group in rounds for m in group if m is not None][:n]
        for m in picked:
            (folder / m.name.replace("/", "_")).write_bytes(tar.extractfile(m).read())
    return folder


def video_folder(root: Path, clips: int, seconds: float) -> Path:
    folder = root / "videos"
    folder.mkdir()
    frames = round(seconds * FPS)
    for i in range(clips):
        render(
            folder / f"clip{i}.avi",
            moving_scene(*SIZE, frames, people=1 + i % 2),
            frames,
            SIZE,
            FPS,
            fourcc="MJPG",
        )
    return folder


def contenders_for(folder: Path, options: BatchOptions, root: Path) -> dict:
    def job(engine: str, actors: int | None, name: str, threads: int | None = None) -> None:
        out = root / "out" / name
        run_batch(
            [str(folder)],
            out,
            options,
            engine,
            actors=actors,
            threads=threads,
            overwrite=True,
            progress=False,
        )

    return {
        "local": lambda: job("local", None, "local"),
        "local, 1 thread": lambda: job("local", None, "local, 1 thread", 1),  # as each Ray actor runs
        "ray, 1 actor": lambda: job("ray", 1, "ray, 1 actor"),
        "ray, 2 actors": lambda: job("ray", 2, "ray, 2 actors"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--clips", type=int, default=4, help="videos (one part each); 0: photos only")
    ap.add_argument("--clip-seconds", type=float, default=8.0)
    ap.add_argument("--video-every", type=int, default=2)
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"# ferkit batch scale benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{machine()}; load average at start {load_average()}; model {args.model}")
    root = Path(tempfile.mkdtemp(prefix="ferkit-scale-"))
    try:
        photos = photo_folder(root, args.photos)
        one = root / "one"
        one.mkdir()
        shutil.copy(next(iter(sorted(photos.iterdir()))), one)
        workloads = {
            "fixed cost (1 photo)": (one, 1, "photos/s"),
            "photos": (photos, len(list(photos.iterdir())), "photos/s"),
        }
        if args.clips:
            videos = video_folder(root, args.clips, args.clip_seconds)
            workloads["video"] = (videos, args.clips * args.clip_seconds, "video-s/s")
        options = BatchOptions(model=args.model, video_every=args.video_every)
        fixed: dict[str, float] = {}
        for work, (folder, amount, unit) in workloads.items():
            print(f"\n## {work}: {amount:g} {unit.split('/')[0]}, {args.rounds} interleaved rounds")
            seconds = interleaved(contenders_for(folder, options, root), args.rounds, warmup=0)
            if not fixed:
                fixed = {name: statistics.median(s) for name, s in seconds.items()}
                print("\n" + ", ".join(f"{n}: {s:.1f} s" for n, s in fixed.items()))
            else:
                report(seconds, fixed, amount, unit)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at end {load_average()}")


def report(seconds: dict[str, list[float]], fixed: dict[str, float], amount: float, unit: str) -> None:
    """Whole-job wall time and rate of each engine, against local's, beside its fixed cost per job."""
    wall = {name: statistics.median(s) for name, s in seconds.items()}
    print(f"\n| engine | wall s (median) | {unit} | × local | fixed cost s (1-photo job) |")
    print("|---|---|---|---|---|")
    for name, w in wall.items():
        print(f"| {name} | {w:.1f} | {amount / w:.2f} | {wall['local'] / w:.2f} | {fixed[name]:.1f} |")


if __name__ == "__main__":
    main()
