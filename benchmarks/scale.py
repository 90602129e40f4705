"""`ferkit batch` throughput: the local engine against Ray (1 and 2 actors) on this machine.

Photos: real colour photos (../shared/data/muxspace-faces.tar.gz; the bundled photo copied when it is
absent); videos: rendered clips of moving faces. Every contender runs once per round, interleaved,
each a whole job into a fresh folder (Ray: a local Ray started for the job, as a user gets it), so
the totals include start-up; "start-up" is the time to the first part (engine start, model load,
first part), and "steady" the rate after it. Run: `nice -n 10 .venv/bin/python benchmarks/scale.py`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from machine_info import load_average, machine
from rounds import interleaved

from ferkit.batch import BatchOptions, run_batch
from ferkit.batch.job import JobRecord
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
        picked = [m for group in zip(*by_class.values(), strict=False) for m in group][:n]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--clips", type=int, default=4, help="videos (one part each)")
    ap.add_argument("--clip-seconds", type=float, default=8.0)
    ap.add_argument("--video-every", type=int, default=2)
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"# ferkit batch scale benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{machine()}; load average at start {load_average()}")
    root = Path(tempfile.mkdtemp(prefix="ferkit-scale-"))
    try:
        workloads = {
            "photos": (photo_folder(root, args.photos), args.photos, "photos/s", 32 / args.photos),
            "video": (video_folder(root, args.clips, args.clip_seconds), args.clips * args.clip_seconds,
                      "video-s/s", 1 / args.clips),
        }  # fmt: skip
        options = BatchOptions(model=args.model, video_every=args.video_every)
        for work, (folder, amount, unit, first) in workloads.items():
            records: dict[str, list[JobRecord]] = {}

            def job(engine: str, actors: int | None, name: str, folder=folder, records=records):
                out = root / "out" / name
                rec = run_batch(
                    [str(folder)], out, options, engine, actors=actors, overwrite=True, progress=False
                )
                records.setdefault(name, []).append(rec)

            contenders = {
                "local": lambda: job("local", None, "local"),
                "ray, 1 actor": lambda: job("ray", 1, "ray, 1 actor"),
                "ray, 2 actors": lambda: job("ray", 2, "ray, 2 actors"),
            }
            print(
                f"\n## {work}: {folder} ({amount:g} {unit.split('/')[0]}), {args.rounds} interleaved rounds"
            )
            seconds = interleaved(contenders, args.rounds, warmup=0)
            report(seconds, records, amount, unit, first)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at end {load_average()}")


def report(
    seconds: dict[str, list[float]],
    records: dict[str, list[JobRecord]],
    amount: float,
    unit: str,
    first: float,
) -> None:
    """The table; steady: the work after the first part over the time after it (approximate)."""
    base = amount / statistics.median(seconds["local"])
    print(f"\n| engine | wall s (median) | {unit} | × local | start-up s | steady {unit} |")
    print("|---|---|---|---|---|---|")
    for name, secs in seconds.items():
        rate = amount / statistics.median(secs)
        startup = statistics.median(r.first_part_s or 0.0 for r in records[name])
        steady = [
            amount * (1 - first) / (s - (r.first_part_s or 0.0))
            for s, r in zip(secs, records[name], strict=True)
            if s > (r.first_part_s or 0.0)
        ]
        print(f"| {name} | {statistics.median(secs):.1f} | {rate:.2f} | {rate / base:.2f} | {startup:.1f} | "
              f"{statistics.median(steady) if steady else float('nan'):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
