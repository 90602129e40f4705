"""Work out what a list of files means: a FER2013 CSV, split folders, or one pool of class folders."""

from __future__ import annotations

from dataclasses import dataclass, field

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
POOL_SPLIT = "all"


@dataclass
class Layout:
    """How a source is organised, and which of its files hold which split and class."""

    kind: str  # "csv" | "split-folders" | "class-folders"
    csv_path: str | None = None
    items: list[tuple[str, str, str]] = field(default_factory=list)  # (path, split, class)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def _strip_wrappers(paths: list[str]) -> int:
    """Number of leading folders shared by every path (e.g. the ``fer2013/`` inside an archive)."""
    depth = 0
    while paths:
        firsts = {p.split("/")[depth] if p.count("/") > depth else None for p in paths}
        if len(firsts) != 1 or None in firsts:
            return depth
        name = firsts.pop()
        if name.lower() in SPLIT_ALIASES:
            return depth
        depth += 1
    return depth


def detect_layout(paths: list[str]) -> Layout:
    """Classify files by their folder structure (never by file extension, except for CSV)."""
    depth = _strip_wrappers(paths)
    rel = {p: "/".join(p.split("/")[depth:]) for p in paths}
    top_csvs = [p for p, r in rel.items() if "/" not in r and r.lower().endswith(".csv")]
    nested = [p for p, r in rel.items() if "/" in r]
    if top_csvs and not nested:
        if len(top_csvs) > 1:
            names = ", ".join(sorted(top_csvs))
            raise ValueError(f"several CSV files ({names}); point ferkit at one of them")
        return Layout("csv", csv_path=top_csvs[0])
    tops = {rel[p].split("/")[0] for p in nested}
    is_split = any(t.lower() in SPLIT_ALIASES for t in tops)
    layout = Layout("split-folders" if is_split else "class-folders")
    for path in paths:
        parts = rel[path].split("/")
        if len(parts) < 2:
            layout.ignored.append((path, "not inside a class folder"))
        elif is_split:
            split = SPLIT_ALIASES.get(parts[0].lower())
            if split is None:
                layout.ignored.append((path, f"folder {parts[0]!r} is not a split (train/val/test)"))
            elif len(parts) < 3:
                layout.ignored.append((path, "not inside a class folder"))
            else:
                layout.items.append((path, split, parts[1]))
        else:
            layout.items.append((path, POOL_SPLIT, parts[0]))
    if not layout.items:
        raise ValueError(
            "no files inside class folders (expected <class>/<image> or <split>/<class>/<image>)"
        )
    return layout
