"""Results as table rows: one row per face, one row saying why for an image without one.

The one row layout of `ImageResult.to_pandas` and `ferkit batch`'s Parquet results (which add the
source id, the model and a manifest's columns); pandas is imported only when a DataFrame is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ferkit.extras import require_extra

if TYPE_CHECKING:
    import pandas as pd

    from ferkit.inference.recognizer import FacePrediction, ImageResult

# where a face is: source, frame / time / track for videos (None for photos), index in its frame
WHERE = ("source", "frame", "time_s", "track", "face")
FACE = ("x", "y", "w", "h", "detection_score", "label", "score")
OUTCOME = ("status", "error")  # status: face | no_face | error
FACE_STATUS, NO_FACE, ERROR = "face", "no_face", "error"


def row_columns(class_names: Sequence[str]) -> list[str]:
    """The columns of a row, in order: `WHERE`, `FACE`, one probability per class, `OUTCOME`."""
    return [*WHERE, *FACE, *class_names, *OUTCOME]


def face_row(source: str, index: int, face: FacePrediction, frame: int | None = None,
             time_s: float | None = None, track: int | None = None) -> dict[str, Any]:  # fmt: skip
    x, y, w, h = face.box
    where = {"source": source, "frame": frame, "time_s": time_s, "track": track, "face": index}
    found = {"x": x, "y": y, "w": w, "h": h, "detection_score": face.detection_score,
             "label": face.label, "score": face.score}  # fmt: skip
    return {**where, **found, **face.probabilities, "status": FACE_STATUS, "error": None}


def empty_row(source: str, error: str | None) -> dict[str, Any]:
    """The one row of a source without a face (``error`` None) or that could not be read."""
    return {"source": source, "status": ERROR if error else NO_FACE, "error": error}


def image_rows(result: ImageResult) -> list[dict[str, Any]]:
    if not result.faces:
        return [empty_row(result.source, result.error)]
    return [face_row(result.source, i, f) for i, f in enumerate(result.faces)]


def results_frame(results: Iterable[ImageResult]) -> pd.DataFrame:
    """`ImageResult`s as one DataFrame (columns `row_columns`; absent values are missing)."""
    require_extra("to_pandas()", "batch", {"pandas": "pandas"})
    import pandas as pd

    rows = [r for res in results for r in image_rows(res)]
    classes = next((list(r) for r in rows if r["status"] == FACE_STATUS), [])
    classes = [c for c in classes if c not in (*WHERE, *FACE, *OUTCOME)]
    return pd.DataFrame(rows, columns=row_columns(classes))
