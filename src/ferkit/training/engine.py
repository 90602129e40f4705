"""The training engine: stages, epochs, validation, checkpoints, early stopping and exact resume.

Single process, or one process per device under ``torchrun`` (DDP; NCCL on GPUs, gloo on CPU).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import f1_score
from torch import nn
from tqdm.auto import tqdm

from ferkit.data.soft_labels import SoftLabels
from ferkit.data.weights import balanced_class_weights
from ferkit.errors import FerkitError
from ferkit.fileio import atomic_write_text
from ferkit.models.bundle import ModelBundle
from ferkit.models.factory import build_model, model_bundle, read_model_file, resolve_preprocessing
from ferkit.models.onnx_weights import calibrate_folded_batchnorm
from ferkit.models.predict import predict_proba
from ferkit.models.preprocess import prepare
from ferkit.runtime import keep_freed_memory
from ferkit.training.augment import augment_batch
from ferkit.training.checkpoint import atomic_save, rng_state, seed_everything, set_rng_state
from ferkit.training.config import StageSpec, TrainConfig, dump_config
from ferkit.training.data import BatchSource, TrainData, prepare_data
from ferkit.training.distill import distill_loss
from ferkit.training.optim import apply_freezing, build_optimizer, build_scheduler, set_train_mode
from ferkit.training.start import init_from_start, resolve_start

METRIC_COLUMNS = [
    "epoch", "stage", "stage_epoch", "lr",
    "train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "seconds",
]  # fmt: skip


@dataclass
class Progress:
    """Where training stands; saved in last.pt so a killed run continues exactly where it was."""

    stage: int = 0
    epoch: int = 0  # epoch within the stage that is in progress
    step: int = 0  # optimizer steps completed in that epoch
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    epoch_seconds: float = 0.0
    epoch_lr: float = 0.0  # learning rate as the epoch started (logged)
    best: float | None = None
    best_epoch: int | None = None
    stage_best: float | None = None
    bad_epochs: int = 0
    stage_done: bool = False  # the stage finished (all epochs, or stopped early)
    done: bool = False
    history: list[dict] = field(default_factory=list)


StepCallback = Callable[["Trainer", Progress], None]


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike, callbacks: list[StepCallback] = ()):
        self.cfg, self.start = resolve_start(cfg)  # an expression start brings its arch + preprocessing
        self.start_note: str | None = None
        self.out = Path(out_dir)
        self.callbacks = list(callbacks)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0

    # ---------------------------------------------------------------- set-up
    def _setup(self) -> None:
        cfg = self.cfg
        keep_freed_memory()
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        seed_everything(cfg.seed, cfg.deterministic)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(cfg.seed * 1000 + self.rank)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.cfg.train.amp
        if amp == "off" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if amp == "fp16" and self.device.type != "cuda":
            raise FerkitError("train.amp=fp16 needs a CUDA GPU; use bf16 or off on CPU")
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if amp == "bf16" else torch.float16

    def _build(self, data: TrainData, resume: bool) -> None:
        cfg = self.cfg
        self.data = data
        self.class_names = list(data.train.class_names)
        spec = cfg.model.model_copy(update={"pretrained": "none"}) if self.start else cfg.model
        self.model = build_model(spec, len(self.class_names))
        self.pp = resolve_preprocessing(cfg.model, self.model.backbone, data.train.channels)
        if self.start is not None and not resume:
            self._init_from_start(data)
        self.model = self.model.to(self.device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        weights = None
        if cfg.train.class_weights == "balanced":
            w = balanced_class_weights(data.train.labels, len(self.class_names), cfg.train.class_weight_clip)
            weights = torch.tensor(w, dtype=torch.float32, device=self.device)
        self.class_weights = weights
        self.criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.train.label_smoothing)
        self.source = BatchSource(data.train, self.device, cfg.data.on_device)
        self.labels = torch.from_numpy(data.train.labels).to(self.device)
        self.teacher = None
        if cfg.train.distill is not None:
            path = cfg.train.distill.teacher
            soft = SoftLabels.load(path).for_dataset(data.train, f"train.distill.teacher {path}")
            self.teacher = torch.from_numpy(soft).float().to(self.device)
        per_rank = len(data.train) // self.world
        self.per_rank = per_rank
        self.steps_per_epoch = max(1, per_rank // cfg.train.batch_size)

    def _init_from_start(self, data: TrainData, calibration: int = 256) -> None:
        """Weights from the expression start; BatchNorms rebuilt from an ONNX file get the statistics
        of (seeded) training faces, so batch-statistics training starts where the start was."""
        self.start_note = init_from_start(self.model, self.cfg.model, self.start, self.class_names)
        if "onnx" in self.start.source:
            pick = np.random.default_rng(self.cfg.seed).permutation(len(data.train))[:calibration]
            x = torch.from_numpy(prepare(data.train.take(np.sort(pick)), self.pp))
            calibrate_folded_batchnorm(self.model, list(x.split(64)))
        if self.is_main:
            print(f"start {self.cfg.model.pretrained}: {self.start_note}", flush=True)

    # ---------------------------------------------------------------- files
    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"

    def _write_run_files(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.yaml", dump_config(self.cfg))
        info = {
            "class_names": self.class_names,
            "preprocessing": self.pp.to_dict(),
            "spec": self.cfg.model.model_dump(mode="json"),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "start": None
            if self.start is None
            else {"from": self.cfg.model.pretrained, "loaded": self.start_note},
        }
        atomic_write_text(self.out / "model.json", json.dumps(info, indent=2))
        data_info = self.data.notes | {
            "source": self.cfg.data.path,
            "train_counts": dict(zip(self.class_names, np.bincount(self.data.train.labels,
                                                                    minlength=len(self.class_names)).tolist(),
                                     strict=True)),
            "val_counts": dict(zip(self.class_names, np.bincount(self.data.val.labels,
                                                                  minlength=len(self.class_names)).tolist(),
                                   strict=True)),
            "class_weights": None if self.class_weights is None else self.class_weights.tolist(),
            "split": self.data.split.to_dict(),
        }  # fmt: skip
        atomic_write_text(self.out / "data.json", json.dumps(data_info, indent=2))

    def _write_metrics(self, history: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())

    def _bundle(self) -> dict:
        return model_bundle(self.model, self.cfg.model, self.class_names, self.pp).to_dict()

    def _save_last(self, prog: Progress) -> None:
        if not self.is_main:
            return
        state = {
            "progress": asdict(prog),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(self.gen),
        }
        atomic_save({"model": self._bundle(), "train_state": state}, self.ckpt_dir / "last.pt")
        self._last_save = time.monotonic()

    def _load_last(self) -> tuple[Progress, dict]:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise FerkitError(f"{path}: nothing to resume (no last checkpoint in {self.out})")
        ckpt = read_model_file(path)
        if "train_state" not in ckpt or "model" not in ckpt:
            raise FerkitError(f"not a ferkit training checkpoint: {path} (no model and training state)")
        self.model.load_state_dict(ModelBundle.from_dict(ckpt["model"], str(path)).state_dict)
        state = ckpt["train_state"]
        return Progress(**state["progress"]), state

    # ---------------------------------------------------------------- training
    def fit(self, resume: bool = False, data: TrainData | None = None) -> Progress:
        """Run (or continue) every stage; returns the final progress with the metric history.

        ``data``: train/val sets built by the caller (``ferkit adapt``) instead of from ``cfg.data``.
        """
        self._setup()
        if resume and not (self.out / "checkpoints" / "last.pt").is_file():
            raise FerkitError(f"{self.out}: nothing to resume (no checkpoints/last.pt)")
        if not resume and (self.ckpt_dir / "last.pt").exists():
            raise FerkitError(f"{self.out}: a run already exists here; pass --resume or choose another --out")
        self._build(data or prepare_data(self.cfg.data, self.cfg.seed), resume)
        if self.is_main:
            print(self.data.split.summary(), flush=True)
        prog, saved = self._load_last() if resume else (Progress(), None)
        if self.is_main and resume:
            print(self._where(prog), flush=True)
        if self.is_main and not resume:
            self._write_run_files()
        self._last_save = time.monotonic()
        while prog.stage < len(self.cfg.stages) and not prog.done:
            self._run_stage(prog, saved)
            saved = None
        if not prog.done:
            prog.done = True
            self._save_last(prog)
        if self.is_main:
            self._write_metrics(prog.history)
        if self.world > 1:
            dist.barrier()
        return prog

    def _where(self, prog: Progress) -> str:
        """Where a resumed run continues, in the terms the config uses."""
        if prog.done or prog.stage >= len(self.cfg.stages):
            return f"resuming {self.out}: training already finished"
        stage = self.cfg.stages[prog.stage]
        return (
            f"resuming {self.out}: stage {prog.stage + 1}/{len(self.cfg.stages)} ({stage.name}), "
            f"epoch {prog.epoch + 1}/{stage.epochs}, step {prog.step}/{self.steps_per_epoch}"
        )

    def _prepare_stage(self, stage: StageSpec, saved: dict | None) -> None:
        apply_freezing(self.model, stage)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = build_optimizer(params, stage.optimizer)
        maximize = self.cfg.train.monitor != "val_loss"
        self.sched, self.sched_every = build_scheduler(
            self.opt, stage.schedule, stage.optimizer.lr, self.steps_per_epoch, stage.epochs, maximize
        )
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if saved is not None:
            self.opt.load_state_dict(saved["optimizer"])
            if self.sched is not None and saved["scheduler"] is not None:
                self.sched.load_state_dict(saved["scheduler"])
            self.scaler.load_state_dict(saved["scaler"])
            set_rng_state(saved["rng"], self.gen)

    def _run_stage(self, prog: Progress, saved: dict | None) -> None:
        stage = self.cfg.stages[prog.stage]
        self._prepare_stage(stage, saved)  # a resumed checkpoint always belongs to this stage
        while not prog.stage_done:
            self._end_epoch(stage, prog, self._run_epoch(stage, prog))
        prog.stage += 1
        prog.epoch, prog.stage_best, prog.bad_epochs, prog.stage_done = 0, None, 0, False

    def _epoch_order(self, prog: Progress) -> np.ndarray:
        """This rank's sample order for the epoch: a function of (seed, stage, epoch) only."""
        perm = np.random.default_rng([self.cfg.seed, prog.stage, prog.epoch]).permutation(
            len(self.data.train)
        )
        return perm[self.rank :: self.world][: self.per_rank]

    def _run_epoch(self, stage: StageSpec, prog: Progress) -> dict:
        cfg = self.cfg.train
        order = self._epoch_order(prog)
        bs = min(cfg.batch_size, len(order))
        if prog.step == 0:
            prog.epoch_lr = self.opt.param_groups[0]["lr"]
        set_train_mode(self.model)
        started = time.monotonic() - prog.epoch_seconds
        loss_sum = torch.tensor(prog.loss_sum, dtype=torch.float64, device=self.device)
        correct = torch.tensor(prog.correct, dtype=torch.int64, device=self.device)
        self.bar = bar = tqdm(
            total=self.steps_per_epoch, initial=prog.step, leave=False,
            disable=not self.is_main, mininterval=0.5 if sys.stderr.isatty() else 30.0,
            desc=f"{stage.name} {prog.epoch + 1}/{stage.epochs}", unit="step",
            bar_format="{desc}: {bar:20} step {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}",
        )  # fmt: skip
        try:
            while prog.step < self.steps_per_epoch:
                idx = order[prog.step * bs : (prog.step + 1) * bs]
                at = torch.from_numpy(idx).to(self.device)
                soft = None if self.teacher is None else self.teacher[at]
                loss, hits = self._train_step(self.source.get(idx), self.labels[at], soft)
                loss_sum += loss.double() * len(idx)
                correct += hits
                prog.step += 1
                prog.seen += len(idx)
                prog.loss_sum, prog.correct = float(loss_sum.item()), int(correct.item())
                prog.epoch_seconds = time.monotonic() - started
                bar.set_postfix_str(self._rate(prog, prog.loss_sum), refresh=False)
                bar.update(1)
                for cb in self.callbacks:
                    cb(self, prog)
                if prog.step < self.steps_per_epoch and self._checkpoint_due(prog):
                    self._save_last(prog)
        except KeyboardInterrupt:
            self._save_last(prog)
            raise
        finally:
            bar.close()
        return {
            "train_loss": prog.loss_sum / max(1, prog.seen),
            "train_acc": prog.correct / max(1, prog.seen),
            "lr": prog.epoch_lr,
        }

    def _rate(self, prog: Progress, loss_sum: float) -> str:
        """The progress bar's live numbers: images per second this epoch and the running mean loss."""
        speed = prog.seen / max(prog.epoch_seconds, 1e-9)
        return f"{speed:.1f} img/s, loss {loss_sum / max(prog.seen, 1):.4f}"

    def _checkpoint_due(self, prog: Progress) -> bool:
        cfg = self.cfg.train
        if cfg.checkpoint_every_steps and prog.step % cfg.checkpoint_every_steps == 0:
            return True
        minutes = cfg.checkpoint_every_minutes
        return self.world == 1 and minutes is not None and time.monotonic() - self._last_save > minutes * 60

    def _train_step(
        self, images: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg.train
        x = augment_batch(images, self.cfg.augment, self.pp, self.gen)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            logits = self.net(x)
        loss = self.criterion(logits.float(), labels)
        if soft is not None:
            kd = self.cfg.train.distill
            loss = (1 - kd.alpha) * loss + kd.alpha * distill_loss(logits, soft, kd.temperature)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        if self.sched is not None and self.sched_every == "step":
            self.sched.step()
        return loss.detach(), (logits.argmax(1) == labels).sum()

    # ---------------------------------------------------------------- validation & bookkeeping
    def validate(self) -> dict:
        """Plain cross-entropy, accuracy and macro-F1 on the validation split."""
        val = self.data.val
        probs = predict_proba(
            self.model, val.take, self.pp, n=len(val), batch_size=self.cfg.train.eval_batch_size,
            tta=self.cfg.train.val_tta, device=self.device, channels_last=self.cfg.train.channels_last,
        )  # fmt: skip
        pred = probs.argmax(1)
        nll = -np.log(np.clip(probs[np.arange(len(val)), val.labels], 1e-12, None)).mean()
        return {
            "val_loss": float(nll),
            "val_acc": float((pred == val.labels).mean()),
            "val_f1": float(f1_score(val.labels, pred, average="macro", labels=range(len(self.class_names)),
                                     zero_division=0)),
        }  # fmt: skip

    def _end_epoch(self, stage: StageSpec, prog: Progress, train_row: dict) -> None:
        """Validate, log, keep the best checkpoint, step plateau schedules, decide early stopping."""
        metrics = self.validate()
        row = {
            "epoch": len(prog.history) + 1, "stage": stage.name, "stage_epoch": prog.epoch + 1,
            **{k: round(v, 6) for k, v in (train_row | metrics).items()},
            "seconds": round(prog.epoch_seconds, 1),
        }  # fmt: skip
        prog.history.append(row)
        monitor = self.cfg.train.monitor
        value, maximize = metrics[monitor], monitor != "val_loss"
        if self.sched is not None and self.sched_every == "epoch":
            self.sched.step(value)
        if prog.best is None or (value > prog.best if maximize else value < prog.best):
            prog.best, prog.best_epoch = value, row["epoch"]
            if self.is_main:
                atomic_save({"model": self._bundle(), "epoch": row["epoch"], "metrics": row},
                            self.ckpt_dir / "best.pt")  # fmt: skip
        delta = stage.early_stopping.min_delta
        if prog.stage_best is None or (
            value > prog.stage_best + delta if maximize else value < prog.stage_best - delta
        ):
            prog.stage_best, prog.bad_epochs = value, 0
        else:
            prog.bad_epochs += 1
        patience = stage.early_stopping.patience
        stop = patience is not None and prog.bad_epochs >= patience
        if self.is_main:
            self._write_metrics(prog.history)
            flag = " *" if prog.best_epoch == row["epoch"] else ""
            print(
                f"epoch {row['epoch']} [{stage.name} {row['stage_epoch']}/{stage.epochs}] "
                f"loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | val loss {row['val_loss']:.4f} "
                f"acc {row['val_acc']:.4f} f1 {row['val_f1']:.4f} | {row['seconds']:.0f}s{flag}"
                + ("  (early stop)" if stop else ""),
                flush=True,
            )
        prog.epoch += 1
        prog.step, prog.loss_sum, prog.correct, prog.seen, prog.epoch_seconds = 0, 0.0, 0, 0, 0.0
        prog.stage_done = stop or prog.epoch >= stage.epochs
        self._save_last(prog)
