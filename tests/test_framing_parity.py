"""Framing parity: at the centre of every random range (the identity framing of training's
augmentation), training produces exactly the tensor inference produces for the same face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.data.imageops import resize
from ferkit.models.preprocess import Preprocessing, prepare
from ferkit.training import augment
from ferkit.training.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def faces(n: int = 6, size: int = 48) -> np.ndarray:
    """Smooth random gray faces (bilinear resizes of them differ only by rounding)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (n, 12, 12), dtype=np.uint8)
    return np.stack([resize(s, size, size)[..., None] for s in small])


def training_view(stored: np.ndarray, aug, pp: Preprocessing, monkeypatch) -> np.ndarray:
    """augment_batch with every random draw at the middle of its range: no shift, zoom, rotation,
    shear, and the random crop at the centre; the random flips, jitter, blur, noise, erasing off."""
    monkeypatch.setattr(augment, "_uniform", lambda n, lo, hi, gen, device: torch.full((n,), (lo + hi) / 2))
    off = {"hflip": 0.0, "jitter_p": 0.0, "blur_p": 0.0, "noise_p": 0.0, "erasing_p": 0.0}
    aug = aug.model_copy(update=off)
    batch = torch.from_numpy(stored).permute(0, 3, 1, 2).contiguous()
    return augment.augment_batch(batch, aug, pp, torch.Generator().manual_seed(0)).numpy()


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_recipe_trains_on_the_framing_inference_uses(config, monkeypatch):
    cfg = load_config(config)
    if cfg.augment.crop_area is not None:
        pytest.skip("random-resized-crop has no single identity framing")
    spec = cfg.model
    pp = Preprocessing(input_size=spec.input_size, mean=(0.5,) * 3, std=(0.5,) * 3,
                       crop_pct=spec.eval_crop_pct, in_chans=spec.in_chans)  # fmt: skip
    source = faces()
    side = cfg.data.image_size or 48  # the dataset as training stores it (auto: FER2013's 48 px)
    stored = np.stack([resize(f, side, side)[..., None] for f in source[..., 0]])
    train = training_view(stored, cfg.augment, pp, monkeypatch)
    infer = prepare(source, pp)
    # the same sampling grid; what is left is inference's rounding of its resize to uint8
    assert train.shape == infer.shape
    assert np.abs(train - infer).max() < 2.5 / 255 / 0.5, config.name


def test_a_random_crop_without_a_matching_eval_crop_would_show_a_wider_face(monkeypatch):
    cfg = load_config(None, ["augment.crop=0.875", "model.input_size=64", "model.eval_crop_pct=1.0"])
    pp = Preprocessing(input_size=64, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    train = training_view(faces(), cfg.augment, pp, monkeypatch)
    assert np.abs(train - prepare(faces(), pp)).max() > 0.1  # the mismatch the parity rule removes
    assert load_config(None, ["augment.crop=0.875"]).model.eval_crop_pct == 0.875
