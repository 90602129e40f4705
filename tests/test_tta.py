"""Test-time augmentation: one implementation of the views (flip, shift, scale, tencrop), stored with
the model's preprocessing and applied the same way by the recognizer and the torch evaluator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ferkit.errors import FerkitError
from ferkit.inference.recognizer import Recognizer
from ferkit.models.preprocess import TTA_MODES, Preprocessing, tta_views

PP = Preprocessing(input_size=48, mean=(0.5,) * 3, std=(0.5,) * 3)


class Fake:
    """A backend whose answer depends on where the image's mass lies (so views change it)."""

    def __init__(self, pp: Preprocessing = PP):
        self.class_names = ["left", "right", "top"]
        self.preprocessing = pp
        self.calls = 0

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        m = batch.mean(1) + 1
        w = batch.shape[-1] // 2
        logits = np.stack([m[:, :, :w].mean((1, 2)), m[:, :, w:].mean((1, 2)), m[:, :w].mean((1, 2))], 1)
        e = np.exp(5 * logits)
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


def blob(x: int, y: int) -> np.ndarray:
    img = np.zeros((48, 48, 1), np.uint8)
    img[y - 3 : y + 3, x - 3 : x + 3] = 255
    return img


VIEWS = {"none": 1, "flip": 2, "shift": 5, "shift+flip": 10, "scale+flip": 6, "shift+scale+flip": 14,
         "tencrop": 10}  # fmt: skip


@pytest.mark.parametrize("mode", TTA_MODES)
def test_each_mode_has_its_views_and_the_recognizer_averages_them(mode):
    crops = [blob(10, 20), blob(30, 12), blob(24, 40)]
    backend = Fake()
    rec = Recognizer(backend, "none", tta=mode)
    probs = rec.probabilities(crops)
    views = rec.views(crops)
    assert len(views) == VIEWS[mode] and views[0].shape == (3, 3, 48, 48)
    expected = np.mean([backend.probabilities(np.ascontiguousarray(v)) for v in views], axis=0)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    one_by_one = np.concatenate([rec.probabilities([c]) for c in crops])
    np.testing.assert_allclose(one_by_one, probs, atol=1e-6)


def test_shift_views_move_the_content_two_pixels_of_48_with_reflected_borders():
    batch = np.random.default_rng(0).random((2, 3, 48, 48)).astype(np.float32)
    centre, right, left, down, up = tta_views(batch, "shift")
    assert np.array_equal(centre, batch)
    assert np.array_equal(right[..., 2:], batch[..., :-2]) and np.array_equal(left[..., :-2], batch[..., 2:])
    assert np.array_equal(down[:, :, 2:], batch[:, :, :-2]) and np.array_equal(up[:, :, :-2], batch[:, :, 2:])
    assert np.array_equal(right[..., :2], batch[..., 1::-1])  # reflected, as training's fill
    big = np.zeros((1, 1, 112, 112), np.float32)
    assert np.array_equal(tta_views(big, "shift")[1].shape, big.shape)  # 112 px: a 5-px move


def test_flip_is_the_mirror_of_every_view():
    batch = np.random.default_rng(1).random((1, 1, 48, 48)).astype(np.float32)
    views = tta_views(batch, "shift+scale+flip")
    for plain, mirrored in zip(views[:7], views[7:], strict=True):
        assert np.array_equal(mirrored, plain[..., ::-1])


def test_the_models_stored_tta_is_its_default_and_callers_override_it():
    stored = Fake(replace(PP, tta="shift+flip"))
    assert Recognizer(stored, "none").tta == "shift+flip"
    assert Recognizer(stored, "none", tta="none").tta == "none"
    assert Recognizer(Fake(), "none").tta == "none"  # files that name none
    assert Preprocessing.from_dict({**PP.to_dict(), "tta": "flip"}).tta == "flip"
    legacy = {k: v for k, v in PP.to_dict().items() if k != "tta"}
    assert Preprocessing.from_dict(legacy).tta is None


def test_unknown_mode_is_one_clear_error():
    with pytest.raises(FerkitError, match=r"tta must be one of none, flip.*not 'mirror'"):
        Recognizer(Fake(), "none", tta="mirror")
    with pytest.raises(FerkitError, match="tta must be one of"):
        tta_views(np.zeros((1, 1, 8, 8), np.float32), "flop")


def test_a_recipe_can_store_its_tta_with_the_model():
    from ferkit.training.config import load_config

    assert load_config(None, ["model.tta=shift+flip"]).model.tta == "shift+flip"
    assert load_config(None).model.tta is None
    with pytest.raises(FerkitError, match=r"model\.tta"):
        load_config(None, ["model.tta=mirror"])
