"""Training: configs, models, augmentation, the engine, exact resume after SIGKILL, DDP."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED, TINY_TRAIN

from ferkit.cli.train import with_soft_labels
from ferkit.data.synthetic import make_synthetic_folders
from ferkit.errors import FerkitError
from ferkit.models.factory import build_model, load_checkpoint, read_model_file, resolve_preprocessing
from ferkit.models.predict import predict_proba
from ferkit.models.preprocess import Preprocessing
from ferkit.models.spec import ModelSpec
from ferkit.training.augment import augment_batch
from ferkit.training.config import AugmentSpec, load_config
from ferkit.training.engine import Trainer
from ferkit.training.optim import apply_freezing, parameterised_layers

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = TINY_TRAIN


def read_metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    return make_synthetic_folders(tmp_path / "faces", per_class=16, test_per_class=4)


def test_unknown_keys_and_bad_values_name_the_key():
    with pytest.raises(FerkitError, match=r"train\.batchsize: .*unknown key"):
        load_config(None, ["train.batchsize=3"])
    with pytest.raises(FerkitError, match=r"train\.batch_size: .*greater than or equal to 1"):
        load_config(None, ["train.batch_size=-1"])
    with pytest.raises(FerkitError, match=r"stages\.0\.optimizer\.name"):
        load_config(None, ["stages.0.optimizer.name=rmsprop"])
    with pytest.raises(FerkitError, match=r"--set stages.3.epochs: stages.3 is not a valid list index"):
        load_config(None, ["stages.3.epochs=1"])
    with pytest.raises(FerkitError, match="expected key=value"):
        load_config(None, ["train.batch_size"])


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  nam: efficientnet_b0\n")
    with pytest.raises(FerkitError, match=r"bad.yaml: invalid configuration:\n  model\.nam: .*unknown key"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(FerkitError, match="must be a YAML mapping"):
        load_config(bad)


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_config_runs_one_training_step(config, tmp_path):
    """Each recipe as written (architecture, head, input size, stages), offline weights, tiny data."""
    data = make_synthetic_folders(tmp_path / "d", per_class=4, test_per_class=2)
    sets = [f"data.path={data}", "model.pretrained=none", "train.batch_size=16", "train.eval_batch_size=8",
            "train.threads=1", "train.checkpoint_every_minutes=null"]  # fmt: skip
    cfg = load_config(CONFIGS / config, sets)
    cfg = cfg.model_copy(update={"stages": [s.model_copy(update={"epochs": 1}) for s in cfg.stages]})
    if cfg.train.distill is not None:  # students: soft labels from the shipped teacher, as `ferkit train`
        cfg = with_soft_labels(cfg)
    steps = []
    prog = Trainer(cfg, tmp_path / "run", callbacks=[lambda t, p: steps.append(p.step)]).fit()
    assert len(steps) == len(cfg.stages)  # one optimizer step per stage
    assert len(prog.history) == len(cfg.stages)
    assert (tmp_path / "run/checkpoints/best.pt").is_file()


def test_train_cli_writes_a_self_contained_run_dir(tiny_data, tmp_path):
    from typer.testing import CliRunner

    from ferkit.cli.main import app

    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--data", str(tiny_data), "--set", "stages.0.epochs=3"]
    res = CliRunner().invoke(app, args + [x for s in TINY for x in ("--set", s)])
    assert res.exit_code == 0, res.output
    for name in (
        "config.yaml",
        "metrics.csv",
        "model.json",
        "data.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    ):
        assert (run / name).is_file(), name
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["path"] == str(tiny_data) and saved["model"]["name"] == "test_efficientnet"
    # the run directory alone rebuilds the model and its evaluation preprocessing
    model, names, pp = load_checkpoint(run)
    assert names == ["angry", "happy", "neutral", "sad", "surprise"]
    assert pp.input_size == 48 and pp.data_channels == 1
    best = max(rows, key=lambda r: float(r["val_acc"]))
    from ferkit.data import load_dataset

    val = load_dataset(tiny_data).split("test")
    acc = (predict_proba(model, val.images, pp).argmax(1) == val.labels).mean()
    assert acc == pytest.approx(float(best["val_acc"]), abs=1e-6)
    res = CliRunner().invoke(app, args + [x for s in TINY for x in ("--set", s)])
    assert res.exit_code != 0 and "already exists" in str(res.exception)


def test_progress_bar_shows_step_speed_loss_and_eta(tiny_data, tmp_path):
    shown = []
    cfg = load_config(None, [*TINY, f"data.path={tiny_data}", "stages.0.epochs=1"])
    Trainer(cfg, tmp_path / "run", callbacks=[lambda t, p: shown.append(str(t.bar))]).fit()
    assert shown and all(re.search(r"step \d+/5 \[.*<.*\], [\d.]+ img/s, loss [\d.]+", s) for s in shown), (
        shown
    )


def test_early_stopping_ends_the_stage(tiny_data, tmp_path):
    cfg = load_config(None, [*TINY, f"data.path={tiny_data}", "stages.0.epochs=10",
                             "stages.0.optimizer.lr=1e-12", "stages.0.schedule.name=constant",
                             "stages.0.early_stopping.patience=2", "train.monitor=val_loss",
                             "stages.0.early_stopping.min_delta=0.01"])  # fmt: skip
    prog = Trainer(cfg, tmp_path / "run").fit()
    assert len(prog.history) == 3  # the first epoch sets the bar, two more without improvement


def test_two_stage_freezing_and_frozen_batchnorm(tiny_data, tmp_path):
    cfg = load_config(None, [*TINY, f"data.path={tiny_data}", "augment.hflip=0"])
    torch.manual_seed(cfg.seed)  # the trainer seeds the same way before building its model
    model = build_model(cfg.model, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stage = cfg.stages[0].model_copy(update={"freeze_backbone": True})
    apply_freezing(model, stage)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    stage = cfg.stages[0].model_copy(update={"unfreeze_last": 3, "freeze_bn": True})
    apply_freezing(model, stage)
    trainable = [
        m for m in parameterised_layers(model.backbone) if any(p.requires_grad for p in m.parameters())
    ]
    assert 1 <= len(trainable) <= 3
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trainable)
    # end to end: a frozen-backbone stage changes only the head, and keeps BN statistics
    two = load_config(
        None, [*TINY, f"data.path={tiny_data}", "stages.0.freeze_backbone=true", "stages.0.epochs=2"]
    )
    t = Trainer(two, tmp_path / "run")
    t.fit()
    after = t.model.state_dict()
    for k, v in before.items():
        if k.startswith("backbone."):
            assert torch.equal(v, after[k]), k
    assert not torch.equal(before["head.0.weight"], after["head.0.weight"])


RESUME_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from ferkit.training.config import load_config
    from ferkit.training.engine import Trainer
    cfg = load_config(None, sys.argv[3:])
    kill_at = sys.argv[2]

    def maybe_die(trainer, prog):
        if kill_at and f"{prog.stage}:{prog.epoch}:{prog.step}" == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    resume = os.path.exists(sys.argv[1] + "/checkpoints/last.pt")
    Trainer(cfg, sys.argv[1], callbacks=[maybe_die]).fit(resume=resume)
    """
)


def test_exact_resume_after_sigkill_mid_epoch(tiny_data, tmp_path):
    sets = [*TINY, f"data.path={tiny_data}", "train.checkpoint_every_steps=1", "model.dropout=0.3",
            "model.head=dropout", "augment.rotation=15", "augment.erasing_p=0.5", "augment.brightness=0.3",
            "stages=[{name: warm, epochs: 1, freeze_backbone: true}, {name: fine, epochs: 2}]"]  # fmt: skip
    script = tmp_path / "run_train.py"
    script.write_text(RESUME_SCRIPT)
    env = os.environ | {"PYTHONHASHSEED": "0"}

    def run(out: Path, kill_at: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(out), kill_at, *sets], env=env,
                              capture_output=True, text=True)  # fmt: skip

    ref = run(tmp_path / "ref", "")
    assert ref.returncode == 0, ref.stderr
    killed = run(tmp_path / "cut", "1:1:3")  # stage 2, its second epoch, after its third step
    assert killed.returncode == -9, killed.stderr
    state = read_model_file(tmp_path / "cut/checkpoints/last.pt")["train_state"]["progress"]
    assert (state["stage"], state["epoch"], state["step"]) == (1, 1, 2)  # mid-epoch checkpoint
    resumed = run(tmp_path / "cut", "")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "stage 2/2 (fine), epoch 2/2, step 2/" in resumed.stdout

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(read_metrics(tmp_path / "cut")) == strip(read_metrics(tmp_path / "ref"))
    a = read_model_file(tmp_path / "ref/checkpoints/last.pt")["model"]["state_dict"]
    b = read_model_file(tmp_path / "cut/checkpoints/last.pt")["model"]["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "ferkit.cli.main", "train", "--out", str(run), "--data", str(tiny_data),
           "--set", "stages.0.epochs=2"] + [x for s in TINY for x in ("--set", s)]  # fmt: skip
    res = subprocess.run(
        cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rows = read_metrics(run)
    assert len(rows) == 2
    assert res.stdout.count("epoch 2 [") == 1  # only rank 0 reports


def _synthetic_uint8(n=4, size=32, channels=1):
    return torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    )


def test_augment_identity_flip_and_shapes():
    pp = Preprocessing(32, (0.5,), (0.5,), "bilinear", 1.0, 3, 1)
    x = _synthetic_uint8()
    g = torch.Generator().manual_seed(0)
    ident = augment_batch(x, AugmentSpec(hflip=0.0), pp, g)
    assert ident.shape == (4, 3, 32, 32)
    expected = (x.float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(ident[:, :1], expected, atol=1e-5, rtol=0)
    flipped = augment_batch(x, AugmentSpec(hflip=1.0), pp, g)
    torch.testing.assert_close(flipped, ident.flip(3), atol=1e-5, rtol=0)
    # same generator state → same augmentation; rotation actually moves pixels
    aug = AugmentSpec(rotation=30, translate=0.1, zoom=0.2, shear=10, brightness=0.3, erasing_p=1.0)
    a = augment_batch(x, aug, pp, torch.Generator().manual_seed(5))
    b = augment_batch(x, aug, pp, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    assert (a - ident).abs().mean() > 0.05


def test_random_erasing_zeroes_a_box():
    pp = Preprocessing(32, (0.5,), (0.5,), "bilinear", 1.0, 1, 1)
    x = torch.full((8, 1, 32, 32), 255, dtype=torch.uint8)
    out = augment_batch(
        x, AugmentSpec(hflip=0, erasing_p=1.0, erasing_scale=(0.1, 0.1)), pp, torch.Generator()
    )
    erased = (out == 0).float().mean(dim=(1, 2, 3))
    assert ((erased > 0.05) & (erased < 0.2)).all()


def test_one_channel_stem_and_heads():
    for head, expect in (("linear", 1), ("dropout", 2), ("mlp", 4)):
        spec = ModelSpec(name="test_efficientnet", head=head, dropout=0.2, in_chans=1, input_size=32)
        model = build_model(spec, 5)
        assert len(model.head) == expect
        assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 5)
        pp = resolve_preprocessing(spec, model.backbone, data_channels=1)
        assert pp.in_chans == 1 and len(pp.mean) == 1


def test_unknown_architecture_and_missing_weights_file(tmp_path):
    with pytest.raises(FerkitError, match="unknown architecture 'efficientnet_b99'"):
        build_model(ModelSpec(name="efficientnet_b99"), 7)
    with pytest.raises(FerkitError, match=r"weights file .* not found"):
        build_model(ModelSpec(name="test_efficientnet", pretrained=str(tmp_path / "nope.safetensors")), 7)


def test_hub_weights_offline_say_how_to_pass_a_file():
    code = ("from ferkit.models.factory import build_model; from ferkit.models.spec import ModelSpec;"
            "build_model(ModelSpec(name='efficientnet_b0', pretrained='hub'), 7)")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = "https://127.0.0.1:9"  # nothing listens there: unreachable, like an offline machine
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0
    assert "--set model.pretrained=" in res.stderr
    assert "Retrying" not in res.stderr  # no back-off loop: one connection test, then the message


def test_pretrained_file_must_fit_the_architecture(tmp_path):
    small = build_model(ModelSpec(name="test_efficientnet"), 3).backbone.state_dict()
    good = tmp_path / "good.pth"
    torch.save({"state_dict": small | {"classifier.weight": torch.zeros(1000, 8)}}, good)
    spec = ModelSpec(name="test_efficientnet", pretrained=str(good), in_chans=1)
    stem = build_model(spec, 3).backbone.conv_stem.weight
    assert torch.allclose(
        stem, small["conv_stem.weight"].sum(1, keepdim=True)
    )  # RGB stem adapted to 1 channel
    partial = tmp_path / "partial.pth"
    torch.save(
        {k: v for i, (k, v) in enumerate(small.items()) if i % 2} | {"extra.w": torch.zeros(2)}, partial
    )
    with pytest.raises(
        FerkitError, match=r"partial.pth does not fit test_efficientnet: \d+ of \d+ tensors .* 1 unexp"
    ):
        build_model(ModelSpec(name="test_efficientnet", pretrained=str(partial)), 3)
    with pytest.warns(UserWarning, match="the others stay random"):
        build_model(ModelSpec(name="test_efficientnet", pretrained=str(partial), pretrained_strict=False), 3)
    pickled = tmp_path / "code.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": print}, pickled)  # needs unpickling code
    with pytest.raises(FerkitError, match="cannot read weights"):
        build_model(ModelSpec(name="test_efficientnet", pretrained=str(pickled)), 3)


@pytest.mark.skipif(not (SHARED / "weights").is_dir(), reason="../shared/weights not present")
def test_weights_of_another_architecture_are_refused():
    lite0 = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
    with pytest.raises(FerkitError, match=r"does not fit efficientnet_b1: \d+ of \d+ tensors match"):
        build_model(ModelSpec(name="efficientnet_b1", pretrained=str(lite0)), 7)


@pytest.mark.skipif(not (SHARED / "weights").is_dir(), reason="../shared/weights not present")
def test_shared_imagenet_weights_load_with_their_preprocessing():
    from safetensors.torch import load_file

    for name, file, extra in (
        ("tf_efficientnet_lite0", "tf_efficientnet_lite0.in1k.safetensors", {}),
        ("mobilenetv2", "mobilenetv2_100.tf_in1k_int8dq.safetensors", {"pad_type": "same"}),
    ):
        path = SHARED / "weights" / file
        spec = ModelSpec(name=name, pretrained=str(path), kwargs=extra, input_size=64)
        model = build_model(spec, 7)
        stem = load_file(path)["conv_stem.weight"]
        assert torch.equal(model.backbone.conv_stem.weight, stem)
        pp = resolve_preprocessing(spec, model.backbone, data_channels=1)
        if name.startswith("tf_"):
            assert pp.mean == (0.5, 0.5, 0.5) and pp.std == (0.5, 0.5, 0.5) and pp.interpolation == "bicubic"
