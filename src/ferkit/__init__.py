"""ferkit: facial expression recognition with EfficientNet transfer learning.

``ferkit.Recognizer`` is imported lazily, so ``import ferkit`` stays light (no torch).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Recognizer"]


def __getattr__(name: str):
    if name == "Recognizer":
        from ferkit.inference import Recognizer

        return Recognizer
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")
