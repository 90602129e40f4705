"""Classifier backends: the same model as torch (from a run) or onnxruntime (from an exported .onnx).

Both take a preprocessed float32 NCHW batch and return softmax probabilities (and, with `outputs`,
the penultimate features), and both carry the class names and preprocessing saved with the model,
so callers never pass them separately.
torch is imported only inside `TorchBackend`: the ONNX path runs without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ferkit.errors import FerkitError
from ferkit.models.preprocess import Preprocessing

ModelPaths = str | os.PathLike | Sequence[str | os.PathLike]  # one model, or the members of an ensemble

META_CLASSES = "ferkit.class_names"
META_PREPROCESSING = "ferkit.preprocessing"
META_MEMBERS = "ferkit.members"  # the members' ModelSpecs, so torch weights can be rebuilt from the file
EMBEDDINGS = "embeddings"  # the ONNX output holding the penultimate features


def as_paths(paths: ModelPaths) -> list[str | os.PathLike]:
    return [paths] if isinstance(paths, str | os.PathLike) else list(paths)


class Backend(Protocol):
    class_names: list[str]
    preprocessing: Preprocessing

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 → (N, classes) softmax probabilities."""
        ...

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, (N, D) penultimate features; an ensemble's members side by side)."""
        ...


class TorchBackend:
    """A trained ferkit model in PyTorch (eager, channels_last)."""

    def __init__(self, model, class_names: list[str], preprocessing: Preprocessing, device: str = "cpu"):
        import torch

        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise FerkitError(f"device {device!r}: {exc}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise FerkitError(f"device {device!r}: CUDA is not available here; use --device cpu")
        if self.device.type == "cpu":
            from ferkit.runtime import keep_freed_memory

            keep_freed_memory()
        self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.class_names = list(class_names)
        self.preprocessing = preprocessing

    @classmethod
    def from_checkpoint(cls, path: ModelPaths, device: str = "cpu") -> TorchBackend:
        """From a run directory (its best checkpoint) or a ``.pt`` file; several → their ensemble."""
        from ferkit.extras import require_train

        require_train("a torch checkpoint (run directory or .pt file)", ("torch", "timm", "pydantic"))
        from ferkit.models.factory import load_checkpoint

        model, class_names, pp = load_checkpoint(*as_paths(path))
        return cls(model, class_names, pp, device)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, features=False)[0]

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(batch, features=True)

    def _run(self, batch: np.ndarray, features: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            logits, emb = self.model.forward_with_features(x) if features else (self.model(x), None)
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            return probs, None if emb is None else emb.float().cpu().numpy()


def onnx_session(path: Path, threads: int | None, unreadable: str):
    """An onnxruntime CPU session (``threads`` intra-op threads, None: one per core); a file it cannot
    load is a FerkitError ``"{path}: {unreadable} (reason)"``. Used for the classifier and for YuNet."""
    import onnxruntime as ort

    if threads is not None and threads < 1:
        raise FerkitError(f"threads must be >= 1, not {threads}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FerkitError(f"{path}: {unreadable} ({reason})") from None


class OnnxBackend:
    """A model exported by ``ferkit export``: class names and preprocessing live in its metadata."""

    def __init__(self, session, class_names: list[str], preprocessing: Preprocessing):
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name  # the probabilities
        self.class_names = list(class_names)
        self.preprocessing = preprocessing

    @classmethod
    def from_file(cls, path: str | os.PathLike, threads: int | None = None) -> OnnxBackend:
        """Open an exported model; ``threads`` = onnxruntime intra-op threads (None: one per core).

        onnxruntime's own session settings (one thread per core, idle threads spin) are kept: on a
        near-idle machine they were the fastest or within 1 % at batch 1 and 256, and turning
        spinning off cost up to 29 % at batch 1 (benchmarks/inference_speed.py); under heavy load
        spinning off or ``threads=1`` won instead (docs/benchmarks.md, "Speed (CPU)").
        """
        path = Path(path)
        if not path.is_file():
            raise FerkitError(f"{path}: ONNX model file not found")
        session = onnx_session(path, threads, "not a readable ONNX model")
        meta = session.get_modelmeta().custom_metadata_map
        if META_CLASSES not in meta or META_PREPROCESSING not in meta:
            raise FerkitError(
                f"{path}: not a ferkit model (no class names/preprocessing in its metadata); "
                "create it with `ferkit export RUN_DIR --onnx FILE`"
            )
        pp = Preprocessing.from_dict(json.loads(meta[META_PREPROCESSING]))
        return cls(session, json.loads(meta[META_CLASSES]), pp)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(batch, np.float32)}
        return self.session.run([self.output_name], feed)[0]

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if EMBEDDINGS not in {o.name for o in self.session.get_outputs()}:
            raise FerkitError(
                "this ONNX model has no embeddings output (exported by an older ferkit); "
                "export it again with `ferkit export RUN_DIR --onnx FILE`"
            )
        feed = {self.input_name: np.ascontiguousarray(batch, np.float32)}
        probs, emb = self.session.run([self.output_name, EMBEDDINGS], feed)
        return probs, emb
