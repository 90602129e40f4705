"""Batched, per-sample random augmentation on the training device (GPU when present).

Crop, flip, rotation, translation, zoom and shear are composed into one affine matrix per
sample and applied with a single ``grid_sample`` that also resizes to the network input — one
interpolation instead of a chain of them, and no per-image Python loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ferkit.models.preprocess import Preprocessing
from ferkit.training.config import AugmentSpec


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def affine_matrices(n: int, aug: AugmentSpec, gen: torch.Generator, device) -> torch.Tensor:
    """(n, 2, 3) output→input maps in normalised coordinates ([-1, 1], align_corners=False)."""
    u = lambda lo, hi: _uniform(n, lo, hi, gen, device)  # noqa: E731
    if aug.crop_area is not None:  # random-resized-crop: side fractions from area and aspect ratio
        area = u(*aug.crop_area)
        log_r = u(math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1]))
        sx = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
        sy = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
    else:
        sx = sy = torch.full((n,), aug.crop, device=device)
    cx, cy = u(-1, 1) * (1 - sx), u(-1, 1) * (1 - sy)  # crop centre stays inside the image
    zoom = u(1 - aug.zoom, 1 + aug.zoom)
    theta = u(-aug.rotation, aug.rotation) * (math.pi / 180)
    shear = torch.tan(u(-aug.shear, aug.shear) * (math.pi / 180))
    flip = torch.where(torch.rand(n, generator=gen, device=device) < aug.hflip, -1.0, 1.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # A = diag(sx, sy) · R(theta) · Shear · diag(flip, 1) / zoom
    a11 = (cos * flip) / zoom
    a12 = (cos * shear - sin) / zoom
    a21 = (sin * flip) / zoom
    a22 = (sin * shear + cos) / zoom
    tx, ty = u(-aug.translate, aug.translate) * 2, u(-aug.translate, aug.translate) * 2
    row1 = torch.stack([sx * a11, sx * a12, cx + tx], dim=1)
    row2 = torch.stack([sy * a21, sy * a22, cy + ty], dim=1)
    return torch.stack([row1, row2], dim=1)


def color_jitter(x: torch.Tensor, aug: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation factors per sample, each applied with prob ``jitter_p``."""
    n = x.shape[0]
    apply = (torch.rand(n, generator=gen, device=x.device) < aug.jitter_p).float().view(n, 1, 1, 1)

    def factor(strength: float) -> torch.Tensor:
        f = _uniform(n, max(0.0, 1 - strength), 1 + strength, gen, x.device).view(n, 1, 1, 1)
        return 1 + (f - 1) * apply

    if aug.brightness:
        x = x * factor(aug.brightness)
    if aug.contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor(aug.contrast) + mean
    if aug.saturation and x.shape[1] == 3:
        gray = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = (x - gray) * factor(aug.saturation) + gray
    x = x.clamp(0, 1)
    if aug.gamma:
        x = x.clamp_min(1e-6) ** factor(aug.gamma)
    return x


def gaussian_blur(x: torch.Tensor, aug: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """A separable Gaussian blur with its own sigma per selected sample (one grouped convolution)."""
    n, c, h, w = x.shape
    sigma = _uniform(n, *aug.blur_sigma, gen, x.device)
    on = torch.rand(n, generator=gen, device=x.device) < aug.blur_p
    radius = max(1, math.ceil(3 * aug.blur_sigma[1]))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    k = torch.where(on.view(-1, 1), k / k.sum(1, keepdim=True), (t == 0).to(x.dtype).expand(n, -1))
    k = k.repeat_interleave(c, dim=0)  # (n*c, taps): one kernel per sample and channel
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def sensor_noise(x: torch.Tensor, aug: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    on = (torch.rand(x.shape[0], generator=gen, device=x.device) < aug.noise_p).to(x.dtype)
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return (x + noise * aug.noise_std * on.view(-1, 1, 1, 1)).clamp(0, 1)


def random_erasing(x: torch.Tensor, aug: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Zero one random rectangle per selected sample (after normalisation, as torchvision does)."""
    n, _, h, w = x.shape
    dev = x.device
    area = _uniform(n, *aug.erasing_scale, gen, dev) * h * w
    log_r = _uniform(n, math.log(aug.erasing_ratio[0]), math.log(aug.erasing_ratio[1]), gen, dev)
    eh = torch.sqrt(area * torch.exp(log_r)).clamp(1, h).floor()
    ew = torch.sqrt(area / torch.exp(log_r)).clamp(1, w).floor()
    top = (torch.rand(n, generator=gen, device=dev) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=gen, device=dev) * (w - ew + 1)).floor()
    on = torch.rand(n, generator=gen, device=dev) < aug.erasing_p
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (ys >= top.view(n, 1, 1))
        & (ys < (top + eh).view(n, 1, 1))
        & (xs >= left.view(n, 1, 1))
        & (xs < (left + ew).view(n, 1, 1))
        & on.view(n, 1, 1)
    )
    return x.masked_fill(box.unsqueeze(1), 0.0)


def augment_batch(
    images: torch.Tensor, aug: AugmentSpec, pp: Preprocessing, gen: torch.Generator
) -> torch.Tensor:
    """uint8 (N, C, H, W) on the device → augmented, normalised (N, in_chans, S, S) float32."""
    x = images.float().div_(255.0)
    n, s = x.shape[0], pp.input_size
    grid = F.affine_grid(affine_matrices(n, aug, gen, x.device), [n, x.shape[1], s, s], align_corners=False)
    x = F.grid_sample(x, grid, mode=pp.interpolation, padding_mode=aug.fill, align_corners=False)
    if pp.interpolation == "bicubic":
        x = x.clamp(0, 1)
    if aug.brightness or aug.contrast or aug.saturation or aug.gamma:
        x = color_jitter(x, aug, gen)
    if aug.blur_p > 0:
        x = gaussian_blur(x, aug, gen)
    if aug.noise_p > 0:
        x = sensor_noise(x, aug, gen)
    return normalize_erase(x, aug, pp, gen)


def normalize_erase(
    x: torch.Tensor, aug: AugmentSpec, pp: Preprocessing, gen: torch.Generator
) -> torch.Tensor:
    if x.shape[1] != pp.in_chans:
        luma = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        x = x.expand(-1, pp.in_chans, -1, -1) if x.shape[1] == 1 else (x * luma).sum(1, keepdim=True)
    mean = x.new_tensor(pp.mean).view(1, -1, 1, 1)
    std = x.new_tensor(pp.std).view(1, -1, 1, 1)
    x = (x - mean) / std
    if aug.erasing_p > 0:
        x = random_erasing(x, aug, gen)
    return x
