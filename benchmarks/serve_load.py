"""Load check of `ferkit serve`: a bounded number of requests over concurrent loopback connections.

Starts `ferkit serve` in a subprocess on a free 127.0.0.1 port, sends ``--requests`` requests over
``--connections`` concurrent connections (httpx + asyncio) in ``--rounds`` rounds, and between the
rounds measures the library itself in this process on the same input, at the batch size the server
formed in that round (interleaved, so a shared machine's drift hits both alike). Reports requests/s,
latency percentiles, errors, the server's batch sizes and its resident memory sampled all along
(flat after warm-up?). Sends nothing anywhere but 127.0.0.1 and stops by itself.

Scenarios:
  faces   one face crop per request with detector=none: the server vs `Recognizer.predict_faces`
  photos  the bundled 512x512 photo per request, the server's detector: vs `Recognizer.predict_images`

    .venv/bin/python benchmarks/serve_load.py                       # both scenarios, 1,000 requests each
    .venv/bin/python benchmarks/serve_load.py --scenario faces --connections 32 --tta none
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from machine_info import load_average, machine  # benchmarks/ is on sys.path when run as a script

from ferkit.data.imageops import encode
from ferkit.inference import Recognizer, make_detector
from ferkit.inference.recognizer import ASSETS, decode_image, read_image


@dataclass
class Round:
    seconds: float
    latencies: list[float]
    errors: int
    statuses: dict[int, int]
    batches: int
    faces: int
    library_per_s: float = 0.0
    library_batch: int = 1
    rss_mb: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def mean_batch(self) -> float:
        return self.faces / self.batches if self.batches else 0.0


class RssSampler:
    """Resident memory (MB) of one process, sampled every ``every`` seconds on a thread."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every, self.samples = pid, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.samples.append(self.now())
            except OSError:
                return

    def take(self) -> list[float]:
        """The samples since the last call."""
        out, self.samples = self.samples, []
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as res:
        return json.load(res)


def start_server(args, detector: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "ferkit.cli.main", "serve", "--port", str(port), "--detector", detector,
           "--concurrency", str(args.connections), "--batch-size", str(args.batch_size),
           "--workers", str(args.workers), "--queue", str(args.connections)]  # fmt: skip
    if args.model:
        cmd += ["--model", args.model]
    if args.tta:
        cmd += ["--tta", args.tta]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"ferkit serve exited: {log.read_text()}")
        try:
            health(url)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("ferkit serve did not start within 120 s")


async def send(url: str, n: int, connections: int, payload: bytes, fields: dict) -> Round:
    """``n`` requests over ``connections`` workers, each waiting for its answer before the next."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    todo = iter(range(n))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def worker() -> None:
            nonlocal errors
            for _ in todo:
                start = time.perf_counter()
                try:
                    res = await client.post("/v1/predict", files={"file": ("x.jpg", payload)}, data=fields)
                    statuses[res.status_code] = statuses.get(res.status_code, 0) + 1
                    ok = res.status_code == 200 and not res.json()[0]["error"]
                except httpx.HTTPError:
                    ok = False
                errors += not ok
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
    return Round(time.perf_counter() - start, latencies, errors, statuses, 0, 0)


def library_rate(rec: Recognizer, scenario: str, payload: bytes, n: int, batch: int) -> float:
    """Items (faces or photos) per second of the library on ``n`` copies of the payload, decoding
    included as the server decodes every upload."""
    start = time.perf_counter()
    images = [decode_image(payload, "payload") for _ in range(n)]
    if scenario == "faces":
        rec.predict_faces(images, batch_size=batch)
    else:
        for i in range(0, n, batch):
            rec.predict_images(images[i : i + batch], batch_size=batch)
    return n / (time.perf_counter() - start)


def payload_for(scenario: str) -> tuple[bytes, dict, str]:
    """The uploaded bytes, the form fields, and the detector the server runs with."""
    photo = ASSETS / "astronaut.jpg"
    if scenario == "photos":
        return photo.read_bytes(), {}, "yunet"
    image = read_image(photo)
    yunet = make_detector("yunet")
    crop = yunet.crops(image, yunet.detect(image))[0]
    return encode(crop, ".jpg"), {"detector": "none"}, "yunet"


def run(args, scenario: str) -> list[str]:
    payload, fields, detector = payload_for(scenario)
    rec = Recognizer.load(args.model, detector=detector)
    if args.tta:
        rec.tta = args.tta
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(args, detector, Path(tmp) / "server.log")
        rss = RssSampler(proc.pid)
        try:
            rss_start = rss.now()
            asyncio.run(send(url, args.warmup, args.connections, payload, fields))  # warm-up, not counted
            library_rate(rec, scenario, payload, args.warmup, args.batch_size)
            rss.take()
            rss_warm = rss.now()
            rounds, per_round = [], args.requests // args.rounds
            for _ in range(args.rounds):
                before = health(url)["batching"]
                r = asyncio.run(send(url, per_round, args.connections, payload, fields))
                after = health(url)["batching"]
                r.batches, r.faces = after["batches"] - before["batches"], after["faces"] - before["faces"]
                r.rss_mb = rss.take()
                r.library_batch = max(1, round(r.mean_batch))
                r.library_per_s = library_rate(rec, scenario, payload, per_round, r.library_batch)
                rounds.append(r)
            rss_end = rss.now()
        finally:
            rss.stop()
            proc.terminate()
            proc.wait(timeout=30)
    return report(args, scenario, detector, rec.tta, rounds, (rss_start, rss_warm, rss_end))


def report(args, scenario: str, detector: str, tta: str, rounds: list[Round], rss: tuple) -> list[str]:
    lat = np.array([x for r in rounds for x in r.latencies]) * 1000
    errors = sum(r.errors for r in rounds)
    statuses: dict[int, int] = {}
    for r in rounds:
        for k, v in r.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    unit = "faces" if scenario == "faces" else "photos"
    lib = "predict_faces" if scenario == "faces" else "predict_images"
    lines = [
        f"\n### scenario {scenario}: {len(lat)} requests over {args.connections} connections, "
        f"detector {detector if scenario == 'photos' else 'none'}, TTA {tta}, "
        f"server --batch-size {args.batch_size} --workers {args.workers}",
        "",
        f"| round | requests/s | server mean batch | library {lib} {unit}/s (batch) | server / library "
        "| server RSS MB (min–max) |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rounds, 1):
        lo, hi = (min(r.rss_mb), max(r.rss_mb)) if r.rss_mb else (0, 0)
        lines.append(
            f"| {i} | {r.per_s:.1f} | {r.mean_batch:.2f} | {r.library_per_s:.1f} ({r.library_batch}) "
            f"| {r.per_s / r.library_per_s:.2f} | {lo:.0f}–{hi:.0f} |"
        )
    ratio = statistics.median(r.per_s / r.library_per_s for r in rounds)
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    peak = max(x for r in rounds for x in r.rss_mb) if any(r.rss_mb for r in rounds) else rss[2]
    lines += [
        "",
        f"- median requests/s {statistics.median(r.per_s for r in rounds):.1f}; "
        f"server / library throughput (median of rounds) **{ratio:.2f}**",
        f"- latency ms: p50 {p50:.1f}, p95 {p95:.1f}, p99 {p99:.1f}, max {lat.max():.1f}",
        f"- errors: {errors} (HTTP statuses: {dict(sorted(statuses.items()))})",
        f"- server RSS MB: at start {rss[0]:.0f}, after warm-up {rss[1]:.0f}, peak {peak:.0f}, "
        f"at the end {rss[2]:.0f}",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=["faces", "photos", "both"], default="both")
    ap.add_argument("--requests", type=int, default=1000, help="Counted requests per scenario.")
    ap.add_argument("--rounds", type=int, default=5, help="Server rounds, each followed by a library run.")
    ap.add_argument("--warmup", type=int, default=64, help="Uncounted requests first.")
    ap.add_argument("--connections", type=int, default=16, help="Concurrent connections (8–32).")
    ap.add_argument("--batch-size", type=int, default=32, help="The server's --batch-size.")
    ap.add_argument("--workers", type=int, default=4, help="The server's --workers.")
    ap.add_argument("--model", help="default | fast | PATH (default: the shipped default model).")
    ap.add_argument("--tta", choices=["none", "flip"], help="Default: the model's own.")
    args = ap.parse_args()
    if not 1 <= args.connections <= 64 or args.requests > 100_000:
        sys.exit("keep it bounded: 1-64 connections, at most 100,000 requests")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# ferkit serve load check, {started}\n\n{machine()}; load average before: {load_average()}")
    print(f"onnxruntime threads: default; pid {os.getpid()} runs the client and the library rounds")
    for scenario in ["faces", "photos"] if args.scenario == "both" else [args.scenario]:
        print("\n".join(run(args, scenario)), flush=True)
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
