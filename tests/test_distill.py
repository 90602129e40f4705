"""Distillation (soft labels, their content-keyed cache, the loss) and the photo-like augmentations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN

from ferkit.cli.train import with_soft_labels
from ferkit.data import load_dataset
from ferkit.data.soft_labels import SoftLabels
from ferkit.data.synthetic import make_synthetic_folders
from ferkit.errors import FerkitError
from ferkit.inference import soft_labels as soft_module
from ferkit.models.factory import load_checkpoint
from ferkit.models.predict import predict_proba
from ferkit.training.augment import gaussian_blur, sensor_noise
from ferkit.training.config import AugmentSpec, load_config
from ferkit.training.distill import distill_loss
from ferkit.training.engine import Trainer


@pytest.fixture
def faces(tmp_path):
    return make_synthetic_folders(tmp_path / "faces", per_class=6, test_per_class=2)


def test_distill_loss_is_zero_only_when_the_student_matches_the_teacher():
    teacher = torch.softmax(torch.randn(5, 7), 1)
    assert distill_loss(teacher.log(), teacher, 4.0).abs().item() < 1e-5
    other = distill_loss(torch.randn(5, 7), teacher, 4.0)
    assert other.item() > 1e-3
    logits = torch.zeros(5, 7, requires_grad=True)
    distill_loss(logits, teacher, 2.0).backward()
    # the gradient pushes each student logit towards the teacher's more likely classes
    assert ((-logits.grad).argmax(1) == teacher.argmax(1)).all()


def test_soft_labels_round_trip_and_align_by_pixel_digest(faces, tmp_path):
    ds = load_dataset(faces)
    order = np.random.default_rng(0).permutation(len(ds))
    probs = np.random.default_rng(1).dirichlet(np.ones(len(ds.class_names)), len(ds)).astype(np.float32)
    reversed_names = tuple(reversed(ds.class_names))
    SoftLabels(ds.digests[order], probs[order][:, ::-1], reversed_names, {"t": 1}).save(tmp_path / "s.npz")
    loaded = SoftLabels.load(tmp_path / "s.npz")
    assert loaded.meta == {"t": 1}
    np.testing.assert_allclose(loaded.for_dataset(ds), probs / probs.sum(1, keepdims=True), rtol=1e-6)
    part = SoftLabels(ds.digests[:3], probs[:3], ds.class_names)
    with pytest.raises(FerkitError, match=r"\d+ of \d+ training images have no teacher probabilities"):
        part.for_dataset(ds)
    (tmp_path / "bad.npz").write_text("not numpy")
    with pytest.raises(FerkitError, match=r"bad\.npz: not a ferkit soft-label file"):
        SoftLabels.load(tmp_path / "bad.npz")


def test_teacher_soft_labels_are_cached_by_content(faces, tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = soft_module.Recognizer.load
    monkeypatch.setattr(soft_module.Recognizer, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    ds = load_dataset(faces)
    first = soft_module.teacher_soft_labels("default", ds, "none")
    again = soft_module.teacher_soft_labels("default", ds, "none")
    assert first == again and len(calls) == 1  # reused, not recomputed
    flipped = soft_module.teacher_soft_labels("default", ds, "flip")
    assert flipped != first and len(calls) == 2  # another TTA is another file
    other = load_dataset(make_synthetic_folders(tmp_path / "other", per_class=3, test_per_class=1, seed=5))
    assert soft_module.teacher_soft_labels("default", other, "none") != first
    soft = SoftLabels.load(first)
    assert soft.probs.shape == (len(set(ds.digests.tolist())), 7)
    np.testing.assert_allclose(soft.probs.sum(1), 1, atol=1e-4)


def test_a_student_learns_what_its_teacher_says(faces, tmp_path):
    """alpha = 1: only the teacher's labels count, so a teacher that always says 'surprise' wins."""
    ds = load_dataset(faces)
    always = np.zeros((len(ds), len(ds.class_names)), np.float32)
    always[:, ds.class_names.index("surprise")] = 1
    SoftLabels(ds.digests, always, ds.class_names).save(tmp_path / "t.npz")
    sets = [f"data.path={faces}", *TINY_TRAIN, "stages.0.epochs=6", "stages.0.optimizer.lr=0.01",
            f"train.distill={{teacher: {tmp_path / 't.npz'}, alpha: 1.0, temperature: 1.0}}"]  # fmt: skip
    Trainer(load_config(None, sets), tmp_path / "run").fit()
    model, _, pp = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    test = ds.split("test")
    probs = predict_proba(model, test.take, pp, n=len(test), batch_size=16)
    assert (probs.argmax(1) == ds.class_names.index("surprise")).mean() > 0.9


def test_train_cli_resolves_a_teacher_model_to_its_soft_label_file(faces, tmp_path, monkeypatch):
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    cfg = load_config(None, [f"data.path={faces}", "train.distill={teacher: default, tta: none}"])
    resolved = with_soft_labels(cfg).train.distill
    assert resolved.teacher.endswith(".npz") and resolved.tta == "none"
    assert SoftLabels.load(resolved.teacher).meta["teacher"] == "default"


def test_blur_matches_opencv_and_noise_and_gamma_are_off_by_default():
    img = np.random.default_rng(0).random((2, 1, 24, 24)).astype(np.float32)
    aug = AugmentSpec(blur_p=1.0, blur_sigma=(1.2, 1.2))
    out = gaussian_blur(torch.from_numpy(img), aug, torch.Generator().manual_seed(0)).numpy()
    radius = 4  # ceil(3 * 1.2)
    want = cv2.GaussianBlur(
        img[0, 0], (2 * radius + 1, 2 * radius + 1), 1.2, borderType=cv2.BORDER_REFLECT_101
    )
    np.testing.assert_allclose(out[0, 0], want, atol=1e-5)
    same = gaussian_blur(torch.from_numpy(img), AugmentSpec(blur_p=0.0), torch.Generator().manual_seed(0))
    np.testing.assert_allclose(same.numpy(), img, atol=1e-6)
    x = torch.from_numpy(img)
    assert torch.equal(sensor_noise(x, AugmentSpec(noise_p=0.0), torch.Generator().manual_seed(0)), x)
    noisy = sensor_noise(x, AugmentSpec(noise_p=1.0, noise_std=0.05), torch.Generator().manual_seed(0))
    assert 0.02 < (noisy - x).std().item() < 0.06


def test_a_missing_teacher_is_a_clear_error(faces, tmp_path):
    cfg = load_config(None, [f"data.path={faces}", f"train.distill={{teacher: {tmp_path / 'nope.onnx'}}}"])
    with pytest.raises(FerkitError, match=r"teacher .*nope\.onnx: no such model"):
        with_soft_labels(cfg)
