"""ferkit: facial expression recognition with EfficientNet transfer learning.

``ferkit.Recognizer`` and ``ferkit.read_results`` are imported lazily: ``import ferkit`` stays light.
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
__all__ = ["Recognizer", "read_results"]


def __getattr__(name: str):
    if name == "Recognizer":
        from ferkit.inference import Recognizer

        return Recognizer
    if name == "read_results":
        from ferkit.batch import read_results

        return read_results
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
