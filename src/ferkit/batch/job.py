"""A job's folder: the Parquet parts (each written atomically) and ``job.json``, the job record.

Resume keys on source ids: a source is done when a part holds its rows, so a killed job loses at
most the parts in flight, and a re-run recognises nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ferkit.errors import FerkitError
from ferkit.fileio import atomic_output, atomic_write_text
from ferkit.inference.tables import ERROR, NO_FACE

JOB_FILE = "job.json"
PART_GLOB = "part-*.parquet"


@dataclass
class BatchOptions:
    """What a job computes: the same options give the same rows, whichever engine runs them.

    Attributes:
        model: ``default`` / ``fast`` (shipped), a run directory, ``.pt`` or ``.onnx`` file.
        detector: ``yunet``, ``haar`` or ``none`` (pre-cropped faces).
        tta: ``none`` / ``flip``; None: the model's own setting.
        video_every: process every N-th frame of a video.
        part_size: photos per Parquet part (and per recognizer call); videos are a part each.
    """

    model: str | None = None
    detector: str = "yunet"
    yunet_model: str | None = None
    tta: str | None = None
    video_every: int = 1
    part_size: int = 32

    def check(self) -> None:
        if self.video_every < 1 or self.part_size < 1:
            raise FerkitError("--video-every and --part-size must be at least 1")


@dataclass
class Counts:
    sources: int = 0  # in the job
    skipped: int = 0  # already done when this run started
    done: int = 0  # done by this run
    rows: int = 0
    faces: int = 0
    no_face: int = 0
    errors: int = 0

    def add(self, table: pa.Table, sources: int) -> None:
        status = table.column("status").to_pylist()
        self.done += sources
        self.rows += len(status)
        self.faces += sum(s == "face" for s in status)
        self.no_face += status.count(NO_FACE)
        self.errors += status.count(ERROR)


@dataclass
class JobRecord:
    """``job.json``: the model, options and engine, the counts of the last run and its timings."""

    model_id: str
    options: BatchOptions
    engine: str
    ferkit_version: str
    status: str = "running"  # running | complete | interrupted | failed
    counts: Counts = field(default_factory=Counts)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    first_part_s: float | None = None  # start-up: engine, model load, first part
    sources_per_s: float = 0.0
    engine_info: dict[str, str | int | float] = field(default_factory=dict)

    def write(self, out: Path) -> None:
        self.seconds = time.time() - self.started
        self.sources_per_s = self.counts.done / self.seconds if self.seconds else 0.0
        atomic_write_text(out / JOB_FILE, json.dumps(asdict(self), indent=2) + "\n")


def read_record(out: Path) -> dict | None:
    path = out / JOB_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FerkitError(f"{path}: not a ferkit job record ({exc}); use --overwrite to start over") from None


def prepare_dir(out: Path, model_id: str, options: BatchOptions, overwrite: bool) -> None:
    """Make ``out`` ready: cleared (``overwrite``: our parts and record only), or checked to hold
    the same job, so that a resume never mixes two models' or two settings' rows."""
    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.glob(".part-*.tmp.parquet"):  # left by a killed run
        tmp.unlink()
    if overwrite:
        for p in [*out.glob(PART_GLOB), out / JOB_FILE]:
            p.unlink(missing_ok=True)
        return
    old = read_record(out)
    if old is None:
        if any(out.glob(PART_GLOB)):
            raise FerkitError(f"{out}: holds parts but no {JOB_FILE}; use --overwrite to start over")
        return
    mine = {"model_id": model_id, "options": asdict(options)}
    theirs = {"model_id": old.get("model_id"), "options": old.get("options")}
    if mine != theirs:
        raise FerkitError(f"{out}: holds a job with other settings ({theirs}); "
                          "use --overwrite to start over, or another --out")  # fmt: skip


def done_ids(out: Path) -> set[str]:
    """The source ids that a part already holds."""
    done: set[str] = set()
    for part in out.glob(PART_GLOB):
        try:
            done.update(pq.read_table(part, columns=["source_id"]).column(0).to_pylist())
        except (pa.ArrowException, OSError) as exc:
            raise FerkitError(f"{part}: unreadable part ({exc}); delete it to redo its sources") from None
    return done


def part_path(out: Path, ids: list[str]) -> Path:
    return out / f"part-{hashlib.sha1('|'.join(ids).encode()).hexdigest()[:16]}.parquet"


def write_part(out: Path, ids: list[str], table: pa.Table) -> Path:
    """The rows of the sources ``ids``, atomically: a part is whole or absent."""
    path = part_path(out, ids)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)
    return path


def part_files(out: Path) -> list[Path]:
    return sorted(out.glob(PART_GLOB))
