"""The ``ray`` engine: Ray Data over the parts, an actor pool of recognizers (each loads the model
once), on an existing cluster (``address``) or a local Ray started for the job.

The driver writes the parts, so the results land in the job folder wherever the actors run. Ray Data
restarts a killed actor and retries its part; the sink ignores a part it has already written, so a lost
worker loses and duplicates nothing. Pools are sized to leave CPU room for Ray Data's own tasks (a pool
holding every CPU of a 2-CPU machine hangs the job).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict

import numpy as np

from ferkit.batch.job import BatchOptions
from ferkit.batch.local import Sink
from ferkit.batch.recognise import load_recognizer, part_rows
from ferkit.batch.sources import Source
from ferkit.extras import RAY_MODULES, require_extra

HEADROOM_CPUS = 0.5  # left to Ray Data's tasks


class PartWorker:
    """One actor: a recognizer, loaded once, applied to parts (one part per batch row)."""

    def __init__(self, options: dict, threads: int, device: str):
        self.options = BatchOptions(**options)
        self.rec = load_recognizer(self.options, threads, device)
        self.threads = threads

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for part in batch["part"]:
            sources = [Source(**s) for s in json.loads(part)]
            out.append(json.dumps(part_rows(self.rec, sources, self.options.video_every, self.threads)))
        return {"index": batch["index"], "rows": np.array(out, dtype=object)}


def pool_size(cpus: float, actors: int | None) -> tuple[int, float]:
    """(actors, CPUs per actor): by default one actor per CPU, each asking a little less than a CPU."""
    n = actors or max(1, int(cpus))
    return n, min(1.0, max(0.1, (cpus - HEADROOM_CPUS) / n))


def run_ray(
    parts: list[list[Source]],
    options: BatchOptions,
    sink: Sink,
    address: str | None = None,
    actors: int | None = None,
    num_cpus: int | None = None,
    gpus_per_actor: float = 0.0,
) -> dict:
    """Recognise every part on Ray; returns what the job record says about the engine."""
    require_extra("--engine ray", "ray", RAY_MODULES)
    import ray

    owned = not ray.is_initialized()  # a caller's own Ray session is used and left running
    if not owned:
        pass
    elif address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)  # fmt: skip
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        cpus = float(ray.cluster_resources().get("CPU", 1))
        n, per_actor = pool_size(cpus, actors)
        n = min(n, max(1, len(parts)))
        items = [{"index": i, "part": json.dumps([{"path": s.path, "id": s.id, "kind": s.kind} for s in p])}
                 for i, p in enumerate(parts)]  # fmt: skip
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(items))).map_batches(
            PartWorker,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=per_actor,
            num_gpus=gpus_per_actor,
            fn_constructor_kwargs={
                "options": asdict(options),
                "threads": max(1, int(per_actor)),
                "device": "cuda" if gpus_per_actor else "cpu",
            },
            batch_format="numpy",
        )
        written: set[int] = set()
        for row in ds.iter_rows():
            index = int(row["index"])
            if index not in written:  # a retried part arrives once more at most: write it once
                written.add(index)
                sink(parts[index], json.loads(row["rows"]))
        return {"actors": n, "cpus_per_actor": per_actor, "cluster_cpus": cpus, "address": address or "local"}
    finally:
        if owned:
            ray.shutdown()
