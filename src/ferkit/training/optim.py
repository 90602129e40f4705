"""Per-stage optimisation: which weights train, the optimizer and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ferkit.models.factory import FerNet
from ferkit.training.config import OptimizerSpec, ScheduleSpec, StageSpec


def parameterised_layers(module: nn.Module) -> list[nn.Module]:
    """Modules owning parameters directly, in definition order (what "the last K layers" counts)."""
    return [m for m in module.modules() if next(m.parameters(recurse=False), None) is not None]


def apply_freezing(model: FerNet, stage: StageSpec) -> None:
    """Set requires_grad for a stage: frozen backbone, last-K layers, or everything; BN optionally frozen."""
    backbone = model.backbone
    backbone.requires_grad_(not (stage.freeze_backbone or stage.unfreeze_last))
    if stage.unfreeze_last:
        for layer in parameterised_layers(backbone)[-stage.unfreeze_last :]:
            layer.requires_grad_(True)
    if stage.freeze_bn:
        for m in backbone.modules():
            if isinstance(m, _BatchNorm):
                m.requires_grad_(False)
    model.head.requires_grad_(True)


def set_train_mode(model: FerNet) -> None:
    """Train mode, except BatchNorm layers whose weights are frozen keep their running statistics
    (Keras semantics for a frozen base model, which papers 002-004 use)."""
    model.train()
    for m in model.backbone.modules():
        if isinstance(m, _BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()


def build_optimizer(params: list[nn.Parameter], spec: OptimizerSpec) -> torch.optim.Optimizer:
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, betas=spec.betas)
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, betas=spec.betas)
    return torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.weight_decay, momentum=spec.momentum)


def build_scheduler(
    opt: torch.optim.Optimizer,
    spec: ScheduleSpec,
    lr: float,
    steps_per_epoch: int,
    epochs: int,
    maximize: bool,
):
    """(scheduler or None, stepped per "step" or per "epoch")."""
    total = max(1, steps_per_epoch * epochs)
    if spec.name == "cosine":
        warm = int(spec.warmup_epochs * steps_per_epoch)
        floor = spec.eta_min / lr

        def factor(step: int) -> float:
            if step < warm:
                return spec.warmup_start + (1 - spec.warmup_start) * step / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor), "step"
    if spec.name == "onecycle":
        return (
            torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=spec.pct_start),
            "step",
        )
    if spec.name == "plateau":
        mode = "max" if maximize else "min"
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=spec.factor, patience=spec.patience, min_lr=spec.min_lr
        )
        return sched, "epoch"
    return None, "none"
