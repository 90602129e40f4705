"""The Parquet schema of a job's results: one row per face (see `ferkit.inference.tables`), plus the
source id, the model id and a manifest's own columns; every part of a job has exactly this schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from ferkit.errors import FerkitError
from ferkit.inference.tables import FACE, OUTCOME, WHERE

_TYPES = {
    "source": pa.string(), "frame": pa.int64(), "time_s": pa.float64(), "track": pa.int64(),
    "face": pa.int32(), "x": pa.int32(), "y": pa.int32(), "w": pa.int32(), "h": pa.int32(),
    "detection_score": pa.float32(), "label": pa.string(), "score": pa.float32(),
    "status": pa.string(), "error": pa.string(),
}  # fmt: skip
SOURCE_ID, MODEL = "source_id", "model"


def results_schema(class_names: Sequence[str], extra: pa.Schema) -> pa.Schema:
    """Source id, `WHERE`, `FACE`, one float32 probability per class, `OUTCOME`, model, extra columns."""
    fields = [pa.field(SOURCE_ID, pa.string())]
    fields += [pa.field(n, _TYPES[n]) for n in (*WHERE, *FACE)]
    fields += [pa.field(c, pa.float32()) for c in class_names]
    fields += [pa.field(n, _TYPES[n]) for n in OUTCOME] + [pa.field(MODEL, pa.string())]
    names = [f.name for f in fields]
    clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(extra.names)))
    if clash:
        raise FerkitError(f"column name(s) {', '.join(clash)} are both a result column and a class or "
                          "manifest column: rename them in the manifest")  # fmt: skip
    return pa.schema(fields + list(extra))


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (missing keys are nulls) as a table of exactly ``schema``."""
    return pa.Table.from_pylist(rows, schema=schema)
