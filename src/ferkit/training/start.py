"""Training from an expression model instead of ImageNet: ``model.pretrained: ferkit:default``.

A start is a shipped model (``ferkit:default``, ``ferkit:fast``; rebuilt from its ONNX file), a run
directory, a ``.pt`` or a ferkit ``.onnx`` file; ``#K`` picks member K of an ensemble (default 0:
fine-tuning one member costs a fraction of all, and the first member is the smallest). The start's
architecture and preprocessing travel with the new model: its input size, normalisation and
grayscale input replace the config's, so training and inference see faces as the start did.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ferkit.data.classes import canonical
from ferkit.errors import FerkitError
from ferkit.models.bundle import ModelBundle
from ferkit.models.factory import FerNet, ProbeHead, read_bundle
from ferkit.models.spec import ModelSpec
from ferkit.training.config import TrainConfig

PREFIX = "ferkit:"
ARCH_FIELDS = ("name", "in_chans", "input_size", "interpolation", "mean", "std", "eval_crop_pct", "kwargs")


def is_expression_start(pretrained: str) -> bool:
    """True for ``ferkit:NAME``, a run directory, a ``.pt`` or an ``.onnx`` file (not ImageNet weights)."""
    if pretrained.startswith(PREFIX):
        return True
    path = Path(os.path.expandvars(pretrained.split("#")[0])).expanduser()
    return path.suffix.lower() in (".pt", ".onnx") or (path / "checkpoints" / "best.pt").is_file()


def read_start(source: str) -> ModelBundle:
    """The whole bundle a start names (without ``#K``): every member of an ensemble."""
    if source.startswith(PREFIX):
        from importlib import resources

        from ferkit.inference.recognizer import shipped_model_file
        from ferkit.models.onnx_weights import bundle_from_onnx

        with resources.as_file(shipped_model_file(source.removeprefix(PREFIX))) as path:
            return bundle_from_onnx(path)
    path = Path(os.path.expandvars(source)).expanduser()
    if not path.exists():
        raise FerkitError(
            f"model.pretrained: {source} not found (ferkit:default, a run directory, .pt or .onnx)"
        )
    if path.suffix.lower() == ".onnx":
        from ferkit.models.onnx_weights import bundle_from_onnx

        return bundle_from_onnx(path)
    return read_bundle(path)


def load_start(pretrained: str) -> ModelBundle:
    """The single-model bundle a start names (member ``#K`` of an ensemble, default 0)."""
    source, _, member = pretrained.partition("#")
    bundle = read_start(source)
    if member and not member.isdigit():
        raise FerkitError(f"model.pretrained: {pretrained!r}: the member after # must be a number")
    members, k = bundle.members or [bundle], int(member or 0)
    if k >= len(members):
        raise FerkitError(f"model.pretrained: {source} has {len(members)} members, not member {k}")
    picked = members[k]
    picked.source = {**picked.source, "start": pretrained}
    return picked


def resolve_start(cfg: TrainConfig) -> tuple[TrainConfig, ModelBundle | None]:
    """The config with the start's architecture and preprocessing, and the start's bundle (None
    when training starts from ImageNet or random weights)."""
    if not is_expression_start(cfg.model.pretrained):
        return cfg, None
    start = load_start(cfg.model.pretrained)
    arch = {f: getattr(start.spec, f) for f in ARCH_FIELDS}
    pp = start.preprocessing
    arch |= {"mean": tuple(pp.mean), "std": tuple(pp.std), "interpolation": pp.interpolation}
    model = cfg.model.model_copy(update=arch)
    if model.head == "probe":
        base = start.spec.base_classes if start.spec.head == "probe" else len(start.class_names)
        model = model.model_copy(update={"base_classes": base})
    data = cfg.data
    if pp.data_channels == 1 and data.color != "gray":
        data = data.model_copy(update={"color": "gray"})  # the start was trained on grayscale faces
    return cfg.model_copy(update={"model": model, "data": data}), start


def shared_classes(mine: list[str], theirs: list[str]) -> list[tuple[int, int]]:
    """(my index, their index) for every class both have, matched by canonical name."""
    index = {canonical(c): i for i, c in enumerate(theirs)}
    return [(i, index[canonical(c)]) for i, c in enumerate(mine) if canonical(c) in index]


def init_from_start(model: FerNet, spec: ModelSpec, start: ModelBundle, class_names: list[str]) -> str:
    """Load the start's backbone (and what fits of its head) into ``model``; returns what was loaded.

    Same head and classes: the whole model. A probe head: its base head is the start's classifier.
    A linear/dropout head: the rows of classes the start knows are copied, matched by name.
    """
    state = {k: v.float() if v.is_floating_point() else v for k, v in start.state_dict.items()}
    same = list(start.class_names) == list(class_names) and (start.spec.head, start.spec.hidden) == (
        spec.head,
        spec.hidden,
    )
    if same:
        model.load_state_dict(state)
        return "the whole model (same head and classes)"
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    model.backbone.load_state_dict(backbone)
    if start.spec.head not in ("linear", "dropout"):
        return "the backbone; a new head"
    weight, bias = (t.float() for t in start.classifier())
    if isinstance(model.head, ProbeHead):
        model.head.base.load_state_dict({"weight": weight, "bias": bias})
        return "the backbone and the probe head's base classifier"
    final = model.head[-1]
    pairs = shared_classes(list(class_names), list(start.class_names))
    if spec.head == "mlp" or not pairs:
        return "the backbone; a new head"
    with torch.no_grad():
        for i, j in pairs:
            final.weight[i], final.bias[i] = weight[j], bias[j]
    return f"the backbone and the head rows of {len(pairs)} shared classes"
