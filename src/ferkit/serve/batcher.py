"""Micro-batching: the faces of concurrent requests share network batches.

One thread owns the network. A request hands it its face crops and waits on a future; the thread
takes the first waiting job, gathers more for at most ``max_wait`` seconds or until ``max_batch``
faces, classifies them in one call per TTA mode, and hands each job its own predictions. Under load
batches fill up, so throughput approaches the library's batch throughput; alone, a request waits
at most ``max_wait`` extra.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from ferkit.inference.recognizer import FacePrediction, Recognizer
from ferkit.models.preprocess import TTA_MODES


@dataclass
class _Job:
    crops: list[np.ndarray]
    tta: str
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    """Counters for /health and the load benchmark: batches run, faces classified, largest batch."""

    batches: int = 0
    faces: int = 0
    largest: int = 0

    def to_dict(self) -> dict:
        mean = self.faces / self.batches if self.batches else 0.0
        return {"batches": self.batches, "faces": self.faces, "largest": self.largest, "mean": mean}


class MicroBatcher:
    """Classifies face crops of many callers in shared batches on one background thread.

    Args:
        recognizer: its backend runs every batch (its detector is not used).
        max_batch: most faces per network call (a job larger than that is split by `predict_faces`).
        max_wait: seconds the first job of a batch waits for others.
    """

    def __init__(self, recognizer: Recognizer, max_batch: int = 32, max_wait: float = 0.005):
        # one recognizer per TTA mode over the same backend: requests choose, the model loads once
        self._recognizers = {t: Recognizer(recognizer.backend, "none", tta=t) for t in TTA_MODES}
        self.max_batch, self.max_wait = max_batch, max_wait
        self.stats = BatchStats()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0  # faces submitted and not yet classified
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ferkit-batcher", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, crops: list[np.ndarray], tta: str) -> Future:
        """Queue crops for classification; the future's result is their FacePredictions, in order."""
        job = _Job(crops, tta)
        if not crops:
            job.future.set_result([])
            return job.future
        with self._lock:  # queued first: whoever sees the count can rely on the jobs being there
            self._jobs.put(job)
            self._pending += len(crops)
        return job.future

    def close(self) -> None:
        """Finish the queued jobs, then stop the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job plus those arriving within ``max_wait``, up to ``max_batch`` faces; and
        whether the stop marker was seen."""
        jobs, faces = [first], len(first.crops)
        deadline = time.monotonic() + self.max_wait
        while faces < self.max_batch:
            try:
                job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            faces += len(job.crops)
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._jobs.get()
            if first is None:
                break
            jobs, stop = self._gather(first)
            for tta in TTA_MODES:
                group = [j for j in jobs if j.tta == tta]
                if group:
                    self._classify(self._recognizers[tta], group)

    def _classify(self, recognizer: Recognizer, jobs: list[_Job]) -> None:
        crops = [c for j in jobs for c in j.crops]
        try:
            preds: list[FacePrediction] = recognizer.predict_faces(crops, self.max_batch)
        except Exception as exc:  # handed to every waiting request; the thread keeps serving
            for j in jobs:
                j.future.set_exception(exc)
        else:
            start = 0
            for j in jobs:
                j.future.set_result(preds[start : start + len(j.crops)])
                start += len(j.crops)
            self.stats.batches += -(-len(crops) // self.max_batch)
            self.stats.faces += len(crops)
            self.stats.largest = max(self.stats.largest, min(len(crops), self.max_batch))
        finally:
            with self._lock:
                self._pending -= len(crops)
