"""The ``local`` engine: this machine, no extra dependency. One recognizer whose onnxruntime threads
span the cores; photos decoded on as many threads; parts handed to the job's sink in order."""

from __future__ import annotations

import os
from collections.abc import Callable

from ferkit.batch.job import BatchOptions
from ferkit.batch.recognise import Row, load_recognizer, part_rows
from ferkit.batch.sources import Source
from ferkit.inference.recognizer import Recognizer

Sink = Callable[[list[Source], list[Row]], None]


def run_local(
    parts: list[list[Source]],
    options: BatchOptions,
    sink: Sink,
    threads: int | None = None,
    rec: Recognizer | None = None,
) -> dict:
    """Recognise every part (with ``rec``, else a recognizer loaded here); returns what the job record
    says about the engine."""
    cores = threads or os.cpu_count() or 1
    rec = rec or load_recognizer(options, threads)
    for part in parts:
        sink(part, part_rows(rec, part, options.video_every, cores))
    return {"threads": cores}
