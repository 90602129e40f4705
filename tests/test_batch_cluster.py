"""A 2-node Ray cluster on this machine (a `ray start` head and a second node, 1 CPU each): a
recognizer actor killed mid-job loses and duplicates no source (slow: ~1 min of cluster start-up)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from batch_fixtures import copies  # noqa: E402

from ferkit import read_results  # noqa: E402
from ferkit.batch.job import part_files  # noqa: E402

pytestmark = pytest.mark.slow
SRC = str(Path(__file__).resolve().parents[1] / "src")
RAY = str(Path(sys.executable).with_name("ray"))
# token authentication (Ray >= 2.5x) is for clusters others can reach; this one is the machine's own
ENV = {**os.environ, "PYTHONPATH": SRC, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive_nodes(address: str) -> int:
    code = f"import ray; ray.init(address={address!r}); print(sum(n['Alive'] for n in ray.nodes()))"
    res = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    return int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else 0


@pytest.fixture
def cluster():
    """``HOST:PORT`` of a head and one more node, each a `ray start --block` process ended after."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    nodes = [subprocess.Popen([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                               "--include-dashboard=false", *common], env=ENV)]  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while alive_nodes(address) < 1:
            assert time.monotonic() < deadline, "the Ray head did not start"
        nodes.append(subprocess.Popen([RAY, "start", f"--address={address}", *common], env=ENV))
        while alive_nodes(address) < 2:
            assert time.monotonic() < deadline, "the second Ray node did not join"
        yield address
    finally:
        for node in reversed(nodes):  # --block: SIGTERM stops that node's Ray processes
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # a stopped head leaves it
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def actor_processes() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].startswith("ray::MapWorker"):
            found.append(p)
    return found


def test_a_killed_actor_loses_and_duplicates_nothing(cluster, tmp_path):
    photos = copies(tmp_path / "photos", 40)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ferkit.cli.main", "batch", str(photos), "--out", str(out),
           "--model", "fast", "--engine", "ray", "--address", cluster, "--actors", "2",
           "--part-size", "1", "--no-progress"]  # fmt: skip
    job = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while job.poll() is None and len(part_files(out)) < 5:
        time.sleep(0.1)
    victims = actor_processes()
    assert job.poll() is None and victims, "no recognizer actor to kill while the job ran"
    victims[0].kill()
    done_at_kill = len(part_files(out))
    output, _ = job.communicate(timeout=600)
    assert job.returncode == 0, output
    assert done_at_kill < 40
    record = json.loads((out / "job.json").read_text())
    assert record["status"] == "complete" and record["counts"]["done"] == 40
    assert record["engine_info"]["cluster_cpus"] == 2
    df = read_results(out)
    assert sorted(df.source) == sorted(str(p) for p in photos.iterdir())  # every source exactly once
