"""`FaceDataset`, the one in-memory form of every source, and `load_dataset`, which builds it.

Decoding runs in parallel worker processes and its result is cached on disk (a raw uint8 file
opened as a memmap plus item metadata), keyed by the source's content and the decode options,
so a second load is near-instant and memory stays bounded for datasets larger than RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ferkit.data.decode import Color, Decoded, decode_chunk, header_size
from ferkit.data.fer2013_csv import FER2013_CLASSES, parse_fer_csv
from ferkit.data.imageops import resize
from ferkit.data.layout import Layout, detect_layout
from ferkit.data.sources import Source
from ferkit.errors import FerkitError

CACHE_FORMAT = "ferkit-dataset-v1"
CHUNK = 128
MAX_AUTO_SIZE = 256


@dataclass
class FaceDataset:
    """Images (N, H, W, C) uint8 with one label, split, source and pixel digest per item."""

    pixels: np.ndarray  # backing array, often a read-only memmap of the cache; see `images`
    labels: np.ndarray  # (N,) int64, indices into class_names
    class_names: tuple[str, ...]
    splits: np.ndarray  # (N,) str: train / val / test, or "all" for an unsplit pool
    sources: np.ndarray  # (N,) str: file path inside the source, or "file.csv:line"
    digests: np.ndarray  # (N,) bytes: hash of the full-resolution decoded pixels
    orig_sizes: np.ndarray  # (N, 2) int: width, height before resizing
    orig_modes: np.ndarray  # (N,) str: PIL mode of the file
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable files/rows
    ignored: list[tuple[str, str]] = field(default_factory=list)  # files outside class folders
    origin: str = ""
    layout: str = ""
    rows: np.ndarray | None = None  # which rows of `pixels` this (sub)set holds; None = all
    cache_dir: Path | None = None  # the decoded cache this came from (derived results may be stored there)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def images(self) -> np.ndarray:
        """All images of this set, read into memory."""
        return np.asarray(self.pixels) if self.rows is None else self.pixels[self.rows]

    def take(self, index: np.ndarray) -> np.ndarray:
        """Images at positions ``index`` only: a batch gather that never loads the whole set."""
        index = np.asarray(index)
        return self.pixels[index if self.rows is None else self.rows[index]]

    @property
    def image_size(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[3])

    def split_names(self) -> list[str]:
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(set(self.splits.tolist()), key=lambda s: (order.get(s, 3), s))

    def subset(self, index: np.ndarray | list[int]) -> FaceDataset:
        """Items at ``index`` (integer positions or a boolean mask), sharing the backing pixels."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        rows = index if self.rows is None else self.rows[index]
        return replace(
            self,
            labels=self.labels[index],
            splits=self.splits[index],
            sources=self.sources[index],
            digests=self.digests[index],
            orig_sizes=self.orig_sizes[index],
            orig_modes=self.orig_modes[index],
            rows=rows,
            cache_dir=None,
        )

    def split(self, name: str) -> FaceDataset:
        """The items of one split; a clear error names the splits that exist."""
        mask = self.splits == name
        if not mask.any():
            raise FerkitError(f"{self.origin}: no split {name!r}; it has {self.split_names()}")
        return self.subset(mask)

    def with_splits(self, splits: np.ndarray) -> FaceDataset:
        return replace(self, splits=np.asarray(splits))

    def class_counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: count}} with every class present (zeros included)."""
        out = {}
        for s in self.split_names():
            counts = np.bincount(self.labels[self.splits == s], minlength=len(self.class_names))
            out[s] = {c: int(n) for c, n in zip(self.class_names, counts, strict=True)}
        return out


def cache_root() -> Path:
    """Where decoded datasets are cached: $FERKIT_CACHE_DIR, else ~/.cache/ferkit."""
    return Path(os.environ.get("FERKIT_CACHE_DIR", Path.home() / ".cache" / "ferkit")).expanduser()


def load_dataset(
    path: str | os.PathLike,
    image_size: int | None = None,
    color: Color = "auto",
    strict: bool = False,
    cache: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> FaceDataset:
    """Load any supported source into a `FaceDataset`.

    ``image_size``: stored side length (None = FER2013's 48 for CSVs, else the median image side
    capped at 256). ``color``: ``auto`` keeps colour datasets in colour and stores all-grayscale
    ones (like FER2013) as one channel; ``gray``/``rgb`` force it.
    """
    if color not in ("auto", "gray", "rgb"):
        raise FerkitError(f"color must be auto, gray or rgb, not {color!r}")
    src = Source(path)
    options = f"{CACHE_FORMAT}|{image_size}|{color}|{strict}"
    key = hashlib.sha256(f"{src.fingerprint()}|{options}".encode()).hexdigest()[:24]
    final = cache_root() / "datasets" / key
    if cache and (final / "meta.json").exists():
        return _read_cache(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        _build(src, tmp, image_size, color, strict, workers or os.cpu_count() or 1, progress)
        if not cache:
            ds = _read_cache(tmp)
            return replace(ds, pixels=np.array(ds.pixels), cache_dir=None)
        if final.exists():  # another process finished first: keep its copy
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
        return _read_cache(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read_cache(folder: Path) -> FaceDataset:
    meta = json.loads((folder / "meta.json").read_text())
    items = np.load(folder / "items.npz")
    shape = tuple(meta["shape"])
    pixels = (
        np.memmap(folder / "images.u8", dtype=np.uint8, mode="r", shape=shape)
        if shape[0]
        else np.zeros(shape, np.uint8)
    )
    return FaceDataset(
        pixels=pixels,
        labels=items["labels"],
        class_names=tuple(meta["class_names"]),
        splits=items["splits"],
        sources=items["sources"],
        digests=items["digests"],
        orig_sizes=items["orig_sizes"],
        orig_modes=items["orig_modes"],
        skipped=[tuple(x) for x in meta["skipped"]],
        ignored=[tuple(x) for x in meta["ignored"]],
        origin=meta["origin"],
        layout=meta["layout"],
        cache_dir=folder,
    )


@dataclass
class _Items:
    """Per-item metadata collected while decoding."""

    labels: list[int] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    gray: list[bool] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _build(
    src: Source, out: Path, size: int | None, color: Color, strict: bool, workers: int, progress: bool
):
    files = src.files()
    layout = Layout("csv", csv_path=files[0]) if src.kind == "csv" else _layout(src, files)
    with open(out / "images.u8", "wb") as fh:
        if layout.kind == "csv":
            items, class_names, size, channels = _build_csv(src, layout, fh, size, color, strict)
        else:
            items, class_names, size, channels = _build_images(
                src, layout, fh, size, color, workers, progress
            )
    if strict and items.skipped:
        where, reason = items.skipped[0]
        raise FerkitError(f"{where}: {reason} ({len(items.skipped)} unreadable item(s); strict mode)")
    n = len(items.labels)
    if color == "auto" and channels == 3 and n and all(items.gray):
        _collapse_to_gray(out / "images.u8", (n, size, size, 3))
        channels = 1
    meta = {
        "format": CACHE_FORMAT,
        "origin": str(src.path),
        "layout": layout.kind,
        "class_names": list(class_names),
        "shape": [n, size, size, channels],
        "skipped": items.skipped,
        "ignored": layout.ignored,
    }
    np.savez(
        out / "items.npz",
        labels=np.array(items.labels, dtype=np.int64),
        splits=np.array(items.splits, dtype=str),
        sources=np.array(items.sources, dtype=str),
        digests=np.array(items.digests, dtype="S16"),
        orig_sizes=np.array(items.sizes, dtype=np.int32).reshape(-1, 2),
        orig_modes=np.array(items.modes, dtype=str),
    )
    (out / "meta.json").write_text(json.dumps(meta))


def _layout(src: Source, files: list[str]) -> Layout:
    try:
        return detect_layout(files)
    except ValueError as exc:
        raise FerkitError(f"{src.path}: {exc}") from None


def _build_csv(src, layout, fh, size, color, strict):
    """FER2013 CSV rows → stored images (48x48 gray unless asked otherwise)."""
    _, data = next(src.read([layout.csv_path]))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FerkitError(f"{layout.csv_path}: not a text CSV file ({exc})") from None
    parsed = parse_fer_csv(text, layout.csv_path, strict=strict)
    size = size or parsed.pixels.shape[1]
    channels = 3 if color == "rgb" else 1
    items = _Items(skipped=parsed.skipped)
    for img, label, split, row in zip(parsed.pixels, parsed.labels, parsed.splits, parsed.rows, strict=True):
        digest = hashlib.blake2b(img.tobytes() + str(img.shape).encode(), digest_size=16).digest()
        out = resize(img, size, size)[..., None]
        fh.write(np.repeat(out, channels, axis=2).tobytes())
        items.labels.append(int(label))
        items.splits.append(split)
        items.sources.append(row)
        items.digests.append(digest)
        items.sizes.append(img.shape[::-1])
        items.modes.append("L")
        items.gray.append(True)
    return items, FER2013_CLASSES, size, channels


def _build_images(src, layout, fh, size, color, workers, progress):
    """Stream files → parallel decode → append to the raw image file, in source order."""
    where = {path: (split, cls) for path, split, cls in layout.items}
    class_names = tuple(sorted({cls for _, _, cls in layout.items}))
    label_of = {c: i for i, c in enumerate(class_names)}
    channels = 1 if color == "gray" else 3
    items = _Items()
    chunks = _chunks(src.read(list(where)))
    first = next(chunks, [])
    size = size or _auto_size([data for _, data in first])
    use_pool = workers > 1 and len(where) > 2 * CHUNK
    ctx = get_context("spawn")
    with (
        ProcessPoolExecutor(workers, mp_context=ctx) if use_pool else _InlineExecutor() as pool,
        tqdm(total=len(where), desc="decoding", unit="img", disable=not progress) as bar,
    ):
        pending: deque[tuple[list[str], Future]] = deque()

        def drain_one() -> None:
            names, fut = pending.popleft()
            for name, dec in zip(names, fut.result(), strict=True):
                _record(items, fh, name, dec, where[name], label_of)
            bar.update(len(names))

        for chunk in _prepend(first, chunks):
            pending.append(
                ([n for n, _ in chunk], pool.submit(decode_chunk, [d for _, d in chunk], size, color))
            )
            while len(pending) > 2 * workers:
                drain_one()
        while pending:
            drain_one()
    return items, class_names, size, channels


def _record(items: _Items, fh, name: str, dec: Decoded, split_cls: tuple[str, str], label_of) -> None:
    if dec.pixels is None:
        items.skipped.append((name, dec.reason or "unreadable"))
        return
    fh.write(np.ascontiguousarray(dec.pixels).tobytes())
    items.labels.append(label_of[split_cls[1]])
    items.splits.append(split_cls[0])
    items.sources.append(name)
    items.digests.append(dec.digest)
    items.sizes.append((dec.width, dec.height))
    items.modes.append(dec.mode)
    items.gray.append(dec.is_gray)


def _chunks(stream: Iterator[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
    chunk: list[tuple[str, bytes]] = []
    for entry in stream:
        chunk.append(entry)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prepend(first: list, rest: Iterator[list]) -> Iterator[list]:
    if first:
        yield first
    yield from rest


def _auto_size(sample: list[bytes]) -> int:
    """Median shorter side of a sample of images, capped so big photos do not bloat the cache."""
    sides = [min(s) for s in map(header_size, sample) if s]
    return int(min(np.median(sides), MAX_AUTO_SIZE)) if sides else 48


def _collapse_to_gray(path: Path, shape: tuple[int, int, int, int]) -> None:
    """Rewrite an all-grayscale RGB image file as one channel (a third of the size)."""
    rgb = np.memmap(path, dtype=np.uint8, mode="r", shape=shape)
    tmp = path.with_suffix(".gray")
    with open(tmp, "wb") as fh:
        for start in range(0, shape[0], 4096):
            fh.write(np.ascontiguousarray(rgb[start : start + 4096, ..., :1]).tobytes())
    del rgb
    os.replace(tmp, path)


class _InlineExecutor:
    """Same interface as ProcessPoolExecutor, run in-process (small datasets, no start-up cost)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut
