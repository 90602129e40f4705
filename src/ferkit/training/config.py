"""Training configuration as data: YAML → validated pydantic models, resolved once, saved per run."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from ferkit.data.spec import DataSpec, Strict
from ferkit.errors import FerkitError
from ferkit.models.spec import ModelSpec


class AugmentSpec(Strict):
    """Train-time augmentation, random per sample, run batched on the training device."""

    crop: float = Field(1.0, gt=0, le=1, description="random crop keeping this fraction of the side")
    crop_area: tuple[float, float] | None = Field(None, description="random-resized-crop area range")
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = Field(0.5, ge=0, le=1)
    rotation: float = Field(0.0, ge=0, description="max degrees, uniform in ±rotation")
    translate: float = Field(0.0, ge=0, le=1, description="max shift as a fraction of the side")
    zoom: float = Field(0.0, ge=0, lt=1, description="scale factor in [1-zoom, 1+zoom]")
    shear: float = Field(0.0, ge=0, description="max shear angle in degrees")
    brightness: float = Field(0.0, ge=0)
    contrast: float = Field(0.0, ge=0)
    saturation: float = Field(0.0, ge=0)
    jitter_p: float = Field(1.0, ge=0, le=1, description="probability of colour jitter per sample")
    erasing_p: float = Field(0.0, ge=0, le=1)
    erasing_scale: tuple[float, float] = (0.02, 0.33)
    erasing_ratio: tuple[float, float] = (0.3, 3.3)
    fill: Literal["reflection", "border", "zeros"] = "reflection"
    # Photo-like degradations, so a model trained on one dataset copes with other cameras.
    gamma: float = Field(0.0, ge=0, lt=1, description="gamma in [1-gamma, 1+gamma], with jitter_p")
    blur_p: float = Field(0.0, ge=0, le=1, description="probability of a Gaussian blur (out of focus)")
    blur_sigma: tuple[float, float] = Field((0.3, 1.5), description="blur sigma range, input pixels")
    noise_p: float = Field(0.0, ge=0, le=1, description="probability of Gaussian sensor noise")
    noise_std: float = Field(0.03, ge=0, description="noise standard deviation, intensity in [0, 1]")


class OptimizerSpec(Strict):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0)  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)


class ScheduleSpec(Strict):
    name: Literal["cosine", "plateau", "onecycle", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)  # cosine: linear warm-up from lr * warmup_start
    warmup_start: float = Field(0.01, gt=0, le=1)
    eta_min: float = Field(0.0, ge=0)  # cosine floor
    factor: float = Field(0.1, gt=0, lt=1)  # plateau
    patience: int = Field(2, ge=0)  # plateau
    min_lr: float = Field(0.0, ge=0)  # plateau
    pct_start: float = Field(0.15, gt=0, lt=1)  # onecycle warm-up fraction


class EarlyStopSpec(Strict):
    patience: int | None = Field(None, ge=1, description="None = never stop early")
    min_delta: float = Field(0.0, ge=0)


class StageSpec(Strict):
    """One training stage; two-stage recipes freeze the backbone first, then fine-tune."""

    name: str = "train"
    epochs: int = Field(10, ge=1)
    freeze_backbone: bool = False
    unfreeze_last: int | None = Field(
        None, ge=1, description="train only the last K parameterised layers of the backbone (plus head)"
    )
    freeze_bn: bool = Field(False, description="keep BatchNorm statistics and affine weights frozen")
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    early_stopping: EarlyStopSpec = EarlyStopSpec()

    @model_validator(mode="after")
    def _freeze_choice(self) -> StageSpec:
        if self.freeze_backbone and self.unfreeze_last:
            raise ValueError("freeze_backbone and unfreeze_last exclude each other")
        return self


class DistillSpec(Strict):
    """Learn from a teacher's probabilities as well as the labels (Hinton et al., 2015)."""

    teacher: str = Field(
        description="soft-label .npz, or a model (default | run dir | .onnx) to compute one with (cached)"
    )
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.7, ge=0, le=1, description="weight of the teacher term; 1 - alpha: the labels")
    tta: Literal["none", "flip"] = Field("flip", description="teacher TTA when computing soft labels")


class TrainSpec(Strict):
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: Literal["none", "balanced"] = "none"
    class_weight_clip: float | None = Field(None, gt=0)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16/fp16 on CUDA, fp32 on CPU
    channels_last: bool = True
    grad_clip: float | None = Field(None, gt=0)
    monitor: Literal["val_acc", "val_loss", "val_f1"] = "val_acc"
    val_tta: Literal["none", "flip"] = "none"
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also save last.pt mid-epoch")
    checkpoint_every_minutes: float | None = Field(10.0, gt=0)
    threads: int | None = Field(None, ge=1, description="CPU threads (None = torch default)")
    distill: DistillSpec | None = None


class TrainConfig(Strict):
    """A complete, reproducible training recipe."""

    seed: int = 42
    deterministic: bool = False
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    augment: AugmentSpec = AugmentSpec()
    train: TrainSpec = TrainSpec()
    stages: list[StageSpec] = Field(default_factory=lambda: [StageSpec()], min_length=1)


def _set_dotted(tree: dict, dotted: str, value) -> None:
    """Apply ``a.b.0.c=value`` to nested dicts/lists (list indices allowed)."""
    parts = dotted.split(".")
    node = tree
    for i, key in enumerate(parts[:-1]):
        nxt_default: dict | list = {}
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise FerkitError(f"--set {dotted}: {'.'.join(parts[: i + 1])} is not a valid list index")
            node = node[int(key)]
            continue
        node = node.setdefault(key, nxt_default)
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise FerkitError(f"--set {dotted}: {last} is not a valid list index")
        node[int(last)] = value
    else:
        node[last] = value


def parse_overrides(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        if "=" not in item:
            raise FerkitError(f"--set {item!r}: expected key=value, e.g. train.batch_size=32")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw)))
    return out


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return out


def _unknown_key(loc: tuple) -> str:
    """ "(unknown key; did you mean 'batch_size'?)" from the valid keys where the unknown one sits."""
    model: type[BaseModel] | None = TrainConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _submodel(field.annotation) if field else None
    valid = list(model.model_fields) if model else []
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
    return (
        f" (unknown key; did you mean {close[0]!r}?)"
        if close
        else f" (unknown key; valid: {', '.join(valid)})"
    )


def _submodel(annotation) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_submodel, typing.get_args(annotation)) if m is not None), None)


def build_config(raw: dict, overrides: list[str] = (), origin: str = "config") -> TrainConfig:
    """Validate a config dict (after ``key=value`` overrides); errors name the offending key.

    The file is laid over the full default tree first, so ``--set stages.0.epochs=1`` works even
    when the file does not spell out the default stage.
    """
    pairs = parse_overrides(list(overrides))
    model = raw.get("model") if isinstance(raw, dict) else None
    given = (isinstance(model, dict) and "eval_crop_pct" in model) or any(
        k == "model.eval_crop_pct" for k, _ in pairs
    )
    defaults = TrainConfig().model_dump(mode="json")
    defaults["stages"] = [dict(defaults["stages"][0])]
    raw = _merge(defaults, yaml.safe_load(yaml.safe_dump(raw)))  # deep copy with plain types
    raw["stages"] = [
        _merge(defaults["stages"][0], st) if isinstance(st, dict) else st for st in raw["stages"]
    ]
    for key, value in pairs:
        _set_dotted(raw, key, value)
    try:
        return framing_parity(TrainConfig.model_validate(raw), given)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["type"] != "extra_forbidden" else _unknown_key(e["loc"]))
            for e in exc.errors()
        ]
        raise FerkitError(f"{origin}: invalid configuration:\n" + "\n".join(lines)) from None


def framing_parity(cfg: TrainConfig, explicit: bool) -> TrainConfig:
    """Inference frames the face as training does at its centre position: a random crop keeping
    ``augment.crop`` of the side, centred, is exactly the centre crop of ``model.eval_crop_pct =
    augment.crop``. Left at 1.0, evaluation showed a wider face than training ever did (the paper-000
    recipe's 224/256 crop). An ``eval_crop_pct`` the config names is kept."""
    aug = cfg.augment
    if not explicit and aug.crop_area is None and aug.crop < 1:
        cfg.model.eval_crop_pct = aug.crop
    return cfg


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML recipe (None = all defaults) and apply overrides."""
    if path is None:
        return build_config({}, overrides, "defaults")
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FerkitError(f"{path}: cannot read config: {exc}") from None
    if not isinstance(raw, dict):
        raise FerkitError(f"{path}: a config must be a YAML mapping")
    return build_config(raw, overrides, str(path))


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
