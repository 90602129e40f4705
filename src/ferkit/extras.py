"""Optional parts of the install: a command that needs the training extra says which install to run.

`pip install ferkit` is inference only (ONNX models, no torch); ``pip install 'ferkit[train]'`` adds
what training, evaluation, export, dataset inspection and torch checkpoints need.
"""

from __future__ import annotations

from importlib.util import find_spec

from ferkit.errors import FerkitError

# OpenCV: video files and cameras, the Haar detector; in the video and train extras, not the light install
OPENCV_MODULES = {"cv2": "opencv-python-headless"}
# `ferkit batch` (Parquet output, pandas tables) and its Ray engine: import name → distribution
BATCH_MODULES = {"pyarrow": "pyarrow", "pandas": "pandas"}
RAY_MODULES = {"ray": "ray[data]", **BATCH_MODULES}
TRAIN_INSTALL = "pip install 'ferkit[train]'"
# import name → distribution, for every module of the training extra that ferkit imports
TRAIN_MODULES = {
    "torch": "torch",
    "timm": "timm",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "matplotlib": "matplotlib",
    "yaml": "pyyaml",
    "pydantic": "pydantic",
    "pytorch_grad_cam": "grad-cam",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
}


def missing(modules: tuple[str, ...] | None = None) -> list[str]:
    """The distributions of ``modules`` (default: the whole training extra) that are not installed."""
    return [TRAIN_MODULES[m] for m in modules or TRAIN_MODULES if find_spec(m) is None]


def require_train(what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise a FerkitError naming the install to run when ``modules`` are missing.

    Args:
        what: the feature, as the message's subject (e.g. ``"ferkit train"``).
        modules: import names to check; default every module of the training extra.
    """
    absent = missing(modules)
    if absent:
        raise FerkitError(f"{what} needs the training extra: {TRAIN_INSTALL} (missing: {', '.join(absent)})")


def require_extra(what: str, extra: str, modules: dict[str, str]) -> None:
    """Raise a FerkitError naming ``pip install 'ferkit[EXTRA]'`` when any of ``modules`` (import name
    → distribution) is missing: optional parts are imported lazily, so the light install stays light."""
    absent = [dist for mod, dist in modules.items() if find_spec(mod) is None]
    if absent:
        raise FerkitError(
            f"{what} needs the {extra} extra: pip install 'ferkit[{extra}]' (missing: {', '.join(absent)})"
        )


def opencv(what: str):
    """The ``cv2`` module, or a FerkitError naming ``pip install 'ferkit[video]'`` for ``what``."""
    require_extra(what, "video", OPENCV_MODULES)
    import cv2

    return cv2
