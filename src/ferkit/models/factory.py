"""Build a timm backbone with a paper head, resolve its preprocessing, and read model files safely."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import timm
import torch
from torch import nn

from ferkit.errors import FerkitError
from ferkit.models.bundle import ModelBundle
from ferkit.models.ensemble import Ensemble, ensemble_bundle
from ferkit.models.preprocess import Preprocessing
from ferkit.models.spec import ModelSpec


class FerNet(nn.Module):
    """Backbone (globally pooled features) → head → class logits."""

    def __init__(self, backbone: nn.Module, num_classes: int, spec: ModelSpec):
        super().__init__()
        self.backbone = backbone
        width = backbone.num_features
        drop = [nn.Dropout(spec.dropout)] if spec.dropout > 0 and spec.head != "linear" else []
        if spec.head == "mlp":  # paper 004: Dense(256) → ReLU → Dropout → Dense
            self.head = nn.Sequential(
                nn.Linear(width, spec.hidden),
                nn.ReLU(inplace=True),
                *drop,
                nn.Linear(spec.hidden, num_classes),
            )
        else:  # linear (paper 000): Dense; dropout (002, 003): Dropout(p) → Dense
            self.head = nn.Sequential(*drop, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def resolve_weights(pretrained: str) -> Path:
    """A local weights file: ``~`` and ``$VARS`` expanded; must exist."""
    path = Path(os.path.expandvars(pretrained)).expanduser()
    if not path.is_file():
        raise FerkitError(
            f"model.pretrained: weights file {path} not found "
            "(use 'none', 'hub', or a .safetensors/.pth path)"
        )
    return path


def create_backbone(spec: ModelSpec) -> nn.Module:
    """timm backbone without classifier; weights from nowhere, the hub, or a local file."""
    kwargs = dict(spec.kwargs, num_classes=0, in_chans=spec.in_chans)
    if spec.pretrained == "none":
        kwargs["pretrained"] = False
    elif spec.pretrained == "hub":
        kwargs["pretrained"] = True
    else:
        kwargs |= {
            "pretrained": True,
            "pretrained_cfg_overlay": {"file": str(resolve_weights(spec.pretrained))},
        }
    try:
        return timm.create_model(spec.timm_name, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            close = timm.list_models(f"*{spec.timm_name.split('_')[0]}*")[:8]
            raise FerkitError(f"model.name: unknown architecture {spec.name!r}; similar: {close}") from None
        raise FerkitError(f"model {spec.name}: cannot load weights {spec.pretrained}: {exc}") from None
    except OSError as exc:
        if spec.pretrained == "hub":
            raise FerkitError(
                f"model.pretrained=hub: could not download ImageNet weights for {spec.timm_name} "
                f"(offline?). Pass a local file instead: --set model.pretrained=/path/to/weights.safetensors"
            ) from None
        raise FerkitError(f"model.pretrained: cannot read {spec.pretrained}: {exc}") from None


def build_model(spec: ModelSpec, num_classes: int) -> FerNet:
    return FerNet(create_backbone(spec), num_classes, spec)


def resolve_preprocessing(spec: ModelSpec, backbone: nn.Module, data_channels: int) -> Preprocessing:
    """Input size from the spec; mean/std/interpolation from the architecture's timm config."""
    cfg = timm.data.resolve_data_config({}, model=backbone)
    mean, std = tuple(spec.mean or cfg["mean"]), tuple(spec.std or cfg["std"])
    if spec.in_chans == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    interp = spec.interpolation if spec.interpolation != "auto" else cfg.get("interpolation", "bilinear")
    return Preprocessing(
        input_size=spec.input_size,
        mean=mean,
        std=std,
        interpolation=interp if interp in ("bilinear", "bicubic") else "bilinear",
        crop_pct=spec.eval_crop_pct,
        in_chans=spec.in_chans,
        data_channels=data_channels,
    )


# The only classes and functions allowed in a model file beyond plain data and tensors: those a NumPy
# array pickles as (the NumPy RNG state that `last.pt` holds for exact resume).
_multiarray = getattr(np, "_core", None) or np.core  # NumPy 2 renamed numpy.core
NUMPY_GLOBALS = (np.ndarray, np.dtype, type(np.dtype(np.uint32)), _multiarray.multiarray._reconstruct)


def model_bundle(model: FerNet, spec: ModelSpec, class_names: list[str], pp: Preprocessing) -> ModelBundle:
    """Everything inference needs, independent of any config file."""
    return ModelBundle(
        class_names=list(class_names),
        preprocessing=pp,
        spec=spec.model_copy(update={"pretrained": "none"}),
        state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
    )


def load_bundle(bundle: ModelBundle) -> tuple[nn.Module, list[str], Preprocessing]:
    """Rebuild the model (a `FerNet`, or an `Ensemble` of them) from a bundle; never downloads."""
    if bundle.members:
        members = [load_bundle(m)[0] for m in bundle.members]
        return Ensemble(members).eval(), list(bundle.class_names), bundle.preprocessing
    model = build_model(bundle.spec, len(bundle.class_names))
    state = {k: v.float() if v.is_floating_point() else v for k, v in bundle.state_dict.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise FerkitError(f"model bundle: weights do not fit {bundle.spec.name} ({reason})") from None
    return model.eval(), list(bundle.class_names), bundle.preprocessing


def checkpoint_file(path: str | os.PathLike) -> Path:
    """A ``.pt`` file as given, or a run directory's best checkpoint."""
    path = Path(path)
    return path / "checkpoints" / "best.pt" if path.is_dir() else path


def read_model_file(path: Path) -> dict:
    """A ferkit ``.pt`` file's top-level dict, unpickled with ``weights_only=True``: only plain data,
    tensors and NumPy arrays (`NUMPY_GLOBALS`) are accepted, so a malicious file cannot run code.

    Raises:
        FerkitError: "not a ferkit model file: PATH (...)" for anything else.
    """
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since PyTorch 1.6
        raise FerkitError(f"not a ferkit model file: {path} (not a PyTorch .pt archive)")
    try:
        with torch.serialization.safe_globals(list(NUMPY_GLOBALS)):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"it refers to {blocked.group(1)}" if blocked else "it holds more than weights and plain data"
        raise FerkitError(
            f"not a ferkit model file: {path} (refused to load: {what}; ferkit model files hold only "
            "weights and plain data, so no code in them can run)"
        ) from None
    except Exception as exc:  # torch raises many types for damaged archives
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        raise FerkitError(f"not a ferkit model file: {path} ({reason})") from None
    if not isinstance(data, dict):
        raise FerkitError(f"not a ferkit model file: {path} (it holds a {type(data).__name__}, not a dict)")
    return data


def read_bundle(path: str | os.PathLike) -> ModelBundle:
    """The model bundle of ``best.pt``/``last.pt``/a shipped ``.pt``, or of a run directory's best."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise FerkitError(f"{path}: no checkpoint here (expected a run directory or a .pt file)")
    data = read_model_file(path)
    if "model" not in data:
        raise FerkitError(f"not a ferkit model file: {path} (no model bundle inside)")
    return ModelBundle.from_dict(data["model"], str(path))


def load_checkpoint(*paths: str | os.PathLike) -> tuple[nn.Module, list[str], Preprocessing]:
    """The model of a checkpoint or run directory; several paths → the `Ensemble` of their models."""
    if not paths:
        raise FerkitError("no checkpoint given")
    bundles = [read_bundle(p) for p in paths]
    return load_bundle(bundles[0] if len(bundles) == 1 else ensemble_bundle(bundles, [str(p) for p in paths]))
