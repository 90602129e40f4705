"""`run_batch`: one resumable job over a collection, on the local or the Ray engine; `read_results`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from ferkit import __version__
from ferkit.batch.job import BatchOptions, JobRecord, done_ids, part_files, prepare_dir, write_part
from ferkit.batch.recognise import Row, load_recognizer, model_id
from ferkit.batch.schema import MODEL, results_schema, to_table
from ferkit.batch.sources import Source, expand_sources, groups
from ferkit.errors import FerkitError

ENGINES = ("local", "ray")
RECORD_EVERY_S = 5.0


def run_batch(
    inputs: Sequence[str],
    out: str | Path,
    options: BatchOptions | None = None,
    engine: str = "local",
    address: str | None = None,
    actors: int | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    gpus_per_actor: float = 0.0,
) -> JobRecord:
    """Recognise every photo and video of ``inputs`` into the Parquet dataset ``out``.

    Sources already in ``out`` (same model and options) are skipped; each finished part is written
    atomically, so an interrupted job (Ctrl-C, a kill) resumes where it stopped.

    Args:
        inputs: folders, globs, files, URIs, manifests (CSV/Parquet with a ``path`` column).
        out: the job folder (created).
        options: model and recognition options (`BatchOptions`).
        engine: ``local`` (this machine) or ``ray`` (``pip install 'ferkit[ray]'``).
        address: ``ray``: a cluster to join (``auto``, ``HOST:PORT``); None starts a local Ray.
        actors: ``ray``: recognizer actors (default one per CPU); ``threads``: local threads.
        overwrite: drop the folder's earlier parts and record first.
        progress: show a progress bar with ETA.
        gpus_per_actor: ``ray``: GPUs each actor asks for; torch models (run directories, ``.pt``)
            then run on CUDA (ONNX files run on onnxruntime's CPU provider).

    Returns:
        The job record, also written to ``out/job.json``.
    """
    options = options or BatchOptions()
    options.check()
    if engine not in ENGINES:
        raise FerkitError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if address and engine != "ray":
        raise FerkitError("--address joins a Ray cluster: it needs --engine ray")
    found = expand_sources(inputs)
    rec = load_recognizer(options, threads)
    schema = results_schema(rec.class_names, found.extra_schema)
    record = JobRecord(model_id(options, rec), options, engine, __version__)
    out = Path(out)
    prepare_dir(out, record.model_id, options, overwrite)
    done = done_ids(out)
    pending = [s for s in found.sources if s.id not in done]
    record.counts.sources = len(found.sources)
    record.counts.skipped = len(found.sources) - len(pending)
    parts = groups(pending, options.part_size)
    extras = {s.id: s.extra for s in found.sources}
    bar = tqdm(total=len(pending), unit="source", disable=not progress, dynamic_ncols=True)
    last = [time.monotonic()]

    def sink(part: list[Source], rows: list[Row]) -> None:
        table = to_table([{**r, MODEL: record.model_id, **extras[r["source_id"]]} for r in rows], schema)
        write_part(out, [s.id for s in part], table)
        record.counts.add(table, len(part))
        if record.first_part_s is None:
            record.first_part_s = time.time() - record.started
        bar.update(len(part))
        if time.monotonic() - last[0] > RECORD_EVERY_S:
            record.write(out)
            last[0] = time.monotonic()

    record.write(out)
    try:
        if engine == "local":
            record.engine_info = _local(parts, options, sink, rec, threads)
        else:
            from ferkit.batch.ray_engine import run_ray

            del rec  # the actors load their own
            record.engine_info = run_ray(parts, options, sink, address, actors, gpus_per_actor=gpus_per_actor)
        record.status = "complete"
    except KeyboardInterrupt:
        record.status = "interrupted"
        raise
    except BaseException:
        record.status = "failed"
        raise
    finally:
        bar.close()
        record.write(out)
    return record


def _local(parts, options, sink, rec, threads) -> dict:
    from ferkit.batch.local import run_local

    return run_local(parts, options, sink, threads, rec)


def read_results(out: str | Path):
    """A job folder's rows as one pandas DataFrame, ordered by source, frame and face."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    files = part_files(out)
    if not files:
        raise FerkitError(f"{out}: no results here (no part-*.parquet files)")
    import pandas as pd

    table = pa.concat_tables([pq.read_table(f) for f in files])
    nullable = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}  # ints stay ints beside nulls
    frame = table.to_pandas(types_mapper=nullable.get)
    return frame.sort_values(["source", "frame", "face"], na_position="first", kind="stable").reset_index(
        drop=True
    )
