"""Read files out of a dataset source: a directory, a CSV file, or a zip / tar(.gz) archive.

Every source is seen as a list of relative POSIX paths plus a way to stream their bytes, so the
layout detection and decoding never care where the files live.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ferkit.errors import FerkitError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def _hidden(rel: str) -> bool:
    """Skip OS clutter such as .DS_Store, ._files and __MACOSX/ folders."""
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.split("/"))


class Source:
    """A dataset location whose files can be listed and streamed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise FerkitError(f"{self.path}: no such file or directory")
        name = self.path.name.lower()
        if self.path.is_dir():
            self.kind = "dir"
        elif name.endswith(".csv"):
            self.kind = "csv"
        elif name.endswith(".zip"):
            self.kind = "zip"
        elif name.endswith(ARCHIVE_SUFFIXES[1:]):
            self.kind = "tar"
        else:
            raise FerkitError(
                f"{self.path}: not a dataset source; expected a directory, a .csv file or an archive "
                f"({', '.join(ARCHIVE_SUFFIXES)})"
            )

    def files(self) -> list[str]:
        """Relative paths of the regular files, hidden clutter left out (archive order for tar)."""
        if self.kind == "csv":
            return [self.path.name]
        if self.kind == "dir":
            found = []
            for root, _dirs, names in os.walk(self.path):
                rel_root = Path(root).relative_to(self.path).as_posix()
                for n in names:
                    rel = n if rel_root == "." else f"{rel_root}/{n}"
                    found.append(rel)
            return sorted(r for r in found if not _hidden(r))
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.path) as zf:
                    return [i.filename for i in zf.infolist() if not i.is_dir() and not _hidden(i.filename)]
            with tarfile.open(self.path) as tf:
                names = (m.name.removeprefix("./") for m in tf if m.isfile())
                return [n for n in names if not _hidden(n)]
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
            raise FerkitError(f"{self.path}: cannot read archive: {exc}") from exc

    def read(self, wanted: list[str]) -> Iterator[tuple[str, bytes]]:
        """Yield (path, bytes) for the wanted files, in this source's natural order."""
        want = set(wanted)
        try:
            if self.kind in ("dir", "csv"):
                base = self.path if self.kind == "dir" else self.path.parent
                for rel in wanted:
                    yield rel, (base / rel).read_bytes()
            elif self.kind == "zip":
                with zipfile.ZipFile(self.path) as zf:
                    for rel in wanted:
                        yield rel, zf.read(rel)
            else:
                with tarfile.open(self.path) as tf:  # one sequential pass: gzip cannot seek cheaply
                    for m in tf:
                        name = m.name.removeprefix("./")
                        if m.isfile() and name in want:
                            fh = tf.extractfile(m)
                            yield name, fh.read() if fh else b""
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise FerkitError(f"{self.path}: archive is damaged: {exc}") from exc

    def fingerprint(self) -> str:
        """Cache key of the source's content: file bytes for files, (path, size, mtime) for folders."""
        h = hashlib.sha256(self.kind.encode())
        if self.kind == "dir":
            for rel in self.files():
                st = (self.path / rel).stat()
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        else:
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
        return h.hexdigest()
