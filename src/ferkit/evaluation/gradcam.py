"""Grad-CAM heat maps (pytorch-grad-cam) on the last convolution of the backbone (paper 004)."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from ferkit.models.preprocess import Preprocessing, match_channels, network_view, prepare


def target_layers(model: nn.Module) -> list[nn.Module]:
    """The last Conv2d of the backbone (the final convolutional stage of CNNs such as EfficientNet);
    for an ensemble, that of every member, whose maps pytorch-grad-cam averages."""
    layers = []
    for member in getattr(model, "members", [model]):
        convs = [m for m in member.backbone.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("Grad-CAM needs a convolutional backbone")
        layers.append(convs[-1])
    return layers


def gradcam_overlays(
    model: nn.Module, images: np.ndarray, targets: list[int], pp: Preprocessing, batch_size: int = 32
) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB overlays: the heat map for class ``targets[i]`` on the network's view."""
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    views = match_channels(network_view(images, pp), 3)
    out = []
    with GradCAM(model=model, target_layers=target_layers(model)) as cam:
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(prepare(images[start : start + batch_size], pp))
            chosen = [ClassifierOutputTarget(int(t)) for t in targets[start : start + batch_size]]
            maps = cam(input_tensor=x, targets=chosen)
            for view, heat in zip(views[start : start + batch_size], maps, strict=True):
                out.append(show_cam_on_image(view.astype(np.float32) / 255.0, heat, use_rgb=True))
    return np.stack(out) if out else np.zeros((0, pp.input_size, pp.input_size, 3), np.uint8)


def pick_examples(
    labels: np.ndarray, probs: np.ndarray, per_class: int = 3
) -> list[tuple[int, list[int], list[int]]]:
    """Per true class: the most confident correct and the most confident wrong predictions."""
    pred, conf = probs.argmax(1), probs.max(1)
    picks = []
    for c in range(probs.shape[1]):
        mine = np.flatnonzero(labels == c)
        order = mine[np.argsort(-conf[mine], kind="stable")]
        right = [int(i) for i in order if pred[i] == c][:per_class]
        wrong = [int(i) for i in order if pred[i] != c][:per_class]
        picks.append((c, right, wrong))
    return picks
