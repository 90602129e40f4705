"""Own photo datasets end to end: any image/input size, one split resolver, cross-dataset evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_TRAIN
from photo_fixtures import make_photo_pool

from ferkit.models.preprocess import resize_batch
from ferkit.training.config import load_config
from ferkit.training.engine import Trainer


@pytest.mark.parametrize("n", [1, 3, 200])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("side", "size"), [(256, 240), (256, 112), (350, 260), (48, 112), (240, 240)])
def test_resize_batch_any_size_channels_and_batch(n, channels, side, size):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, side, side, channels), dtype=np.uint8)
    images[-1] = 200  # a flat image stays flat at any size
    out = resize_batch(images, size, "bicubic")
    assert out.shape == (n, size, size, channels) and out.dtype == np.uint8
    assert (out[-1] == 200).all()
    if n > 1:  # each image is resized on its own: the same result alone as in the batch
        assert np.array_equal(out[0], resize_batch(images[:1], size, "bicubic")[0])


@pytest.mark.parametrize(
    ("sizes", "input_size", "color"),
    [
        ([(256, 256)], 240, True),
        ([(256, 256)], 112, False),
        ([(350, 350)], 260, True),
        ([(350, 350), (256, 256), (300, 200), (97, 131)], 112, True),
    ],
)
def test_train_and_evaluate_on_photos_whose_size_does_not_divide_the_input(
    sizes, input_size, color, tmp_path
):
    from ferkit.evaluation.evaluate import evaluate

    data = make_photo_pool(tmp_path / "photos", sizes, per_class=5, color=color)
    cfg = load_config(None, [*TINY_TRAIN, f"data.path={data}", f"model.input_size={input_size}",
                             "data.split={ratios: [0.6, 0.2, 0.2]}", "stages.0.epochs=1",
                             "train.batch_size=8", "train.eval_batch_size=5"])  # fmt: skip
    Trainer(cfg, tmp_path / "run").fit()
    m = evaluate([tmp_path / "run"], str(data), tmp_path / "eval", split="test", gradcam_per_class=1)
    assert m["n"] == 5 and 0 <= m["accuracy"] <= 1
    saved = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert saved["n"] == 5
