"""ferkit: facial expression recognition with EfficientNet transfer learning.

``ferkit.Recognizer`` is imported lazily, so ``import ferkit`` stays light (no torch).
"""

from __future__ import annotations

from importlib import metadata


def _version() -> str:
    """The installed distribution's version: pyproject.toml is its one source."""
    try:
        return metadata.version("ferkit")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


__version__ = _version()
__all__ = ["Recognizer"]


def __getattr__(name: str):
    if name == "Recognizer":
        from ferkit.inference import Recognizer

        return Recognizer
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
