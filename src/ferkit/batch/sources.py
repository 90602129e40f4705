"""A job's inputs: folders, globs, files, URIs and manifests (CSV or Parquet with a ``path`` column)
expanded into `Source`s, each with an id that stays the same across runs (what resume keys on)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ferkit.errors import FerkitError
from ferkit.inference.recognizer import IMAGE_EXTENSIONS, decode_image, expand_inputs

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
MANIFEST_SUFFIXES = (".csv", ".parquet")
PATH_COLUMN = "path"


@dataclass
class Source:
    """One photo or video of a job; ``extra`` holds its manifest row's other columns."""

    path: str
    id: str
    kind: str  # "image" | "video"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Inputs:
    """The expanded inputs, in order and without duplicates, and the manifests' extra columns."""

    sources: list[Source]
    extra_schema: pa.Schema


def is_uri(path: str) -> bool:
    return "://" in path


def source_id(path: str) -> str:
    """A stable id: the hash of the absolute path (local) or of the URI (s3://, gs://, ...)."""
    canonical = path if is_uri(path) else os.path.abspath(path)
    return hashlib.sha1(canonical.encode()).hexdigest()[:16]


def make_source(path: str, extra: dict[str, Any] | None = None) -> Source:
    kind = "video" if Path(path.split("?")[0]).suffix.lower() in VIDEO_EXTENSIONS else "image"
    return Source(path, source_id(path), kind, extra or {})


def read_manifest(path: Path) -> pa.Table:
    """A manifest table; relative ``path`` values are taken relative to the manifest's folder."""
    try:
        if path.suffix.lower() == ".csv":
            from pyarrow import csv

            table = csv.read_csv(path)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise FerkitError(f"{path}: cannot read this manifest ({exc})") from None
    if PATH_COLUMN not in table.column_names:
        raise FerkitError(
            f"{path}: a manifest needs a '{PATH_COLUMN}' column; it has {', '.join(table.column_names)}"
        )
    return table


def _manifest_sources(path: Path) -> tuple[list[Source], pa.Schema]:
    table = read_manifest(path)
    extra = table.drop_columns([PATH_COLUMN])
    sources = []
    for i, (p, row) in enumerate(zip(table.column(PATH_COLUMN).to_pylist(), extra.to_pylist(), strict=True)):
        if not p:
            raise FerkitError(f"{path}: row {i + 1} has an empty '{PATH_COLUMN}'")
        p = str(p)
        full = p if is_uri(p) or os.path.isabs(p) else str(path.parent / p)
        sources.append(make_source(full, row))
    return sources, extra.schema


def expand_sources(inputs: Sequence[str]) -> Inputs:
    """Folders (recursive), globs, files, URIs and manifests → `Inputs`; an empty result is an error."""
    sources: list[Source] = []
    schemas: list[pa.Schema] = []
    for item in inputs:
        path = Path(os.path.expanduser(item))
        if is_uri(item):
            sources.append(make_source(item))
        elif path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            found, schema = _manifest_sources(path)
            sources += found
            schemas.append(schema)
        else:
            sources += [
                make_source(str(p)) for p in expand_inputs([item], IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
            ]
    first: dict[str, Source] = {}
    for s in sources:  # the first of each id, in input order
        first.setdefault(s.id, s)
    unique = list(first.values())
    if not unique:
        raise FerkitError(f"no photo or video found in {', '.join(inputs)}")
    try:
        extra_schema = pa.unify_schemas(schemas) if schemas else pa.schema([])
    except pa.ArrowException as exc:
        raise FerkitError(f"the manifests' columns have different types: {exc}") from None
    return Inputs(unique, extra_schema)


def read_source_image(path: str):
    """A photo at full resolution (as `read_image`), from a local path or any URI pyarrow reads."""
    if not is_uri(path):
        from ferkit.inference.recognizer import read_image

        return read_image(path)
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(path)
        with filesystem.open_input_stream(inner) as fh:
            data = fh.read()
    except (pa.ArrowException, OSError) as exc:
        raise FerkitError(f"{path}: cannot read ({exc})") from None
    return decode_image(data, path)


def groups(sources: Iterable[Source], size: int) -> list[list[Source]]:
    """Sources in parts of at most ``size`` photos; each video is a part of its own."""
    out: list[list[Source]] = []
    photos: list[Source] = []
    for s in sources:
        if s.kind == "video":
            out.append([s])
            continue
        photos.append(s)
        if len(photos) == size:
            out.append(photos)
            photos = []
    return out + ([photos] if photos else [])
