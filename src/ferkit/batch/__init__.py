"""Batch jobs over photo and video collections: resumable, results as a Parquet dataset.

Needs the ``batch`` extra (pyarrow, pandas; the ``ray`` extra adds Ray): imported lazily, so the
light install stays free of them and a missing extra is one clear error.
"""

from __future__ import annotations

from ferkit.extras import BATCH_MODULES, require_extra

__all__ = ["BatchOptions", "read_results", "run_batch"]


def __getattr__(name: str):
    if name in __all__:
        require_extra("ferkit batch", "batch", BATCH_MODULES)
        from ferkit.batch import job, run

        return getattr(job if name == "BatchOptions" else run, name)
    raise AttributeError(f"module 'ferkit.batch' has no attribute {name!r}")
