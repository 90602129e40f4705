"""Build a timm backbone with a paper head, resolve its preprocessing, and read model files safely."""

from __future__ import annotations

import os
import pickle
import re
import socket
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import timm
import torch
from torch import nn

from ferkit.errors import FerkitError
from ferkit.models.bundle import ModelBundle
from ferkit.models.ensemble import Ensemble, ensemble_bundle
from ferkit.models.preprocess import Preprocessing
from ferkit.models.spec import ModelSpec


class ProbeHead(nn.Module):
    """A linear head over [features, log-probabilities of the base model's own head].

    ``ferkit adapt --mode head`` fits ``probe`` with scikit-learn on a frozen expression model; the
    base head stays inside, so the new head can use what the base model already predicts.
    """

    def __init__(self, width: int, base_classes: int, num_classes: int):
        super().__init__()
        self.base = nn.Linear(width, base_classes)
        self.probe = nn.Linear(width + base_classes, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.probe(torch.cat([features, self.base(features).log_softmax(dim=1)], dim=1))


class FerNet(nn.Module):
    """Backbone (globally pooled features) → head → class logits."""

    def __init__(self, backbone: nn.Module, num_classes: int, spec: ModelSpec):
        super().__init__()
        self.backbone = backbone
        width = backbone.num_features
        drop = [nn.Dropout(spec.dropout)] if spec.dropout > 0 and spec.head != "linear" else []
        if spec.head == "probe":
            self.head = ProbeHead(width, spec.base_classes, num_classes)
        elif spec.head == "mlp":  # paper 004: Dense(256) → ReLU → Dropout → Dense
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

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, pooled backbone features): the embeddings `Recognizer.embeddings` returns."""
        features = self.backbone(x)
        return self.head(features), features


def resolve_weights(pretrained: str) -> Path:
    """A local weights file: ``~`` and ``$VARS`` expanded; must exist."""
    path = Path(os.path.expandvars(pretrained)).expanduser()
    if not path.is_file():
        raise FerkitError(
            f"model.pretrained: weights file {path} not found "
            "(use 'none', 'hub', or a .safetensors/.pth path)"
        )
    return path


@contextmanager
def hub_offline_unless_reachable(needed: bool, timeout: float = 3.0) -> Iterator[None]:
    """Put huggingface_hub in offline mode (cache only) when its server cannot be reached.

    Offline, huggingface_hub otherwise retries every download with back-off for about a minute
    per file before timm gives up; one quick connection test turns that into an immediate error.
    """
    from huggingface_hub import constants

    if not needed or constants.HF_HUB_OFFLINE:
        yield
        return
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        reachable = True
    except OSError:
        reachable = False
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = not reachable
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def create_backbone(spec: ModelSpec) -> nn.Module:
    """timm backbone without classifier; weights from nowhere, the hub, or a local file."""
    kwargs = dict(spec.kwargs, num_classes=0, in_chans=spec.in_chans, pretrained=spec.pretrained == "hub")
    try:
        with hub_offline_unless_reachable(spec.pretrained == "hub"):
            backbone = timm.create_model(spec.timm_name, **kwargs)
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
    if spec.pretrained not in ("none", "hub"):
        load_pretrained_file(backbone, spec, resolve_weights(spec.pretrained))
    return backbone


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a ``.pth``/``.pt``/``.bin`` state dict (never unpickled)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FerkitError(f"model.pretrained: cannot read weights {path}: {exc}") from None
    for key in ("state_dict", "model", "state_dict_ema"):  # common training-checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FerkitError(f"model.pretrained: {path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_pretrained_file(backbone: nn.Module, spec: ModelSpec, path: Path) -> None:
    """Load a local weights file into ``backbone``, saying what does not fit.

    The file's classifier is dropped (ferkit adds its own head) and its first convolution adapted to
    ``in_chans``; any other missing, unexpected or differently shaped tensor is an error naming the
    file, the architecture and the counts, or with ``model.pretrained_strict: false`` a warning
    (the matching tensors are loaded, the rest stay random).
    """
    cfg = getattr(backbone, "pretrained_cfg", {}) or {}
    heads = (
        [cfg.get("classifier")]
        if isinstance(cfg.get("classifier"), str)
        else list(cfg.get("classifier") or [])
    )
    state = {k: v for k, v in read_weights(path).items() if not any(k.startswith(f"{h}.") for h in heads)}
    first = f"{cfg.get('first_conv')}.weight"
    if first in state and state[first].ndim == 4 and state[first].shape[1] != spec.in_chans:
        from timm.models import adapt_input_conv

        state[first] = adapt_input_conv(spec.in_chans, state[first])
    own = backbone.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    fits = {k: v for k, v in state.items() if k in own and k not in reshaped}
    if missing or unexpected or reshaped:
        example = (reshaped or missing or unexpected)[0]
        msg = (
            f"model.pretrained: {path} does not fit {spec.timm_name}: {len(fits)} of {len(own)} tensors "
            f"match; {len(missing)} missing from the file, {len(unexpected)} unexpected, {len(reshaped)} "
            f"of another shape (e.g. {example})"
        )
        if spec.pretrained_strict:
            raise FerkitError(msg + "; set model.pretrained_strict=false to load the matching ones anyway")
        warnings.warn(msg + "; loading the matching tensors, the others stay random", stacklevel=2)
    backbone.load_state_dict(fits, strict=False)


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
        tta=spec.tta,
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
