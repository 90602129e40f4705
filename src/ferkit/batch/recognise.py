"""The work of one part, the same in every engine: its photos or video → result rows.

Photos are decoded on a few threads (decoders release the GIL) and all their faces classified in one
batched pass; a video goes through the streaming video pipeline. A source that fails becomes an error
row: nothing here raises for bad input.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ferkit.batch.job import BatchOptions
from ferkit.batch.sources import Source, read_source_image
from ferkit.errors import FerkitError
from ferkit.inference.recognizer import ImageResult, Recognizer
from ferkit.inference.tables import empty_row, face_row, image_rows

Row = dict[str, Any]


def load_recognizer(options: BatchOptions, threads: int | None = None, device: str = "cpu") -> Recognizer:
    """The job's recognizer (detector built now, so a missing model file fails before any work)."""
    rec = Recognizer.load(options.model, options.detector, device, options.yunet_model, threads)
    if options.tta is not None:
        rec.tta = options.tta
    rec.detector  # noqa: B018
    return rec


def model_id(options: BatchOptions, rec: Recognizer) -> str:
    """``name@content-hash/tta``: which model made a row, and with which TTA."""
    from ferkit.inference.soft_labels import model_fingerprint

    name = options.model or "default"
    return f"{name}@{model_fingerprint(name)[:12]}/tta={rec.tta}"


def part_rows(rec: Recognizer, part: list[Source], video_every: int, decode_threads: int = 1) -> list[Row]:
    """The rows of a part's sources, in order, each tagged with its ``source_id``."""
    if len(part) == 1 and part[0].kind == "video":
        rows = video_rows(rec, part[0], video_every)
    else:
        rows = [r for res in _photo_results(rec, part, decode_threads) for r in image_rows(res)]
    by_path = {s.path: s.id for s in part}
    return [{**r, "source_id": by_path[r["source"]]} for r in rows]


def _decode(source: Source):
    try:
        return read_source_image(source.path)
    except FerkitError as exc:
        return str(exc)


def _photo_results(rec: Recognizer, part: list[Source], decode_threads: int) -> list[ImageResult]:
    with ThreadPoolExecutor(max(1, decode_threads)) as pool:
        decoded = list(pool.map(_decode, part))
    ok = [(s, im) for s, im in zip(part, decoded, strict=True) if not isinstance(im, str)]
    try:
        found = rec.predict_images([im for _, im in ok], sources=[s.path for s, _ in ok])
    except Exception:  # one odd image must not cost the part: redo them one by one
        found = [_one(rec, s, im) for s, im in ok]
    results = iter(found)
    return [ImageResult(s.path, [], error=im) if isinstance(im, str) else next(results)
            for s, im in zip(part, decoded, strict=True)]  # fmt: skip


def _one(rec: Recognizer, source: Source, image) -> ImageResult:
    try:
        return rec.predict_images([image], sources=[source.path])[0]
    except Exception as exc:
        return ImageResult(source.path, [], error=f"{source.path}: {type(exc).__name__}: {exc}")


def video_rows(rec: Recognizer, source: Source, every: int) -> list[Row]:
    """Every face of every ``every``-th frame (frame, time, track); one row when there is none."""
    from ferkit.inference.video import VideoOptions, iter_video, open_capture

    if "://" in source.path:
        return [empty_row(source.path, f"{source.path}: videos are read from local paths only")]
    rows: list[Row] = []
    try:
        cap = open_capture(source.path)
        try:
            for fr in iter_video(rec, cap, VideoOptions(every=every)):
                rows += [face_row(source.path, i, tf.face, fr.frame, fr.time_s, tf.track)
                         for i, tf in enumerate(fr.faces)]  # fmt: skip
        finally:
            cap.release()
    except Exception as exc:  # a broken file mid-way: what was read stays, with the reason
        reason = str(exc) if isinstance(exc, FerkitError) else f"{source.path}: {type(exc).__name__}: {exc}"
        return [*rows, empty_row(source.path, reason)]
    return rows or [empty_row(source.path, None)]
