"""Per-track summaries (JSON or CSV) and the emotion-over-time plot of a video."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.extras import require_train
from ferkit.fileio import atomic_output
from ferkit.inference.recognizer import csv_rows
from ferkit.inference.video.timeline import Timeline


@dataclass
class Stretch:
    """Consecutive processed frames of one track with the same label."""

    frames: int = 0
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass
class TrackStats:
    """Running statistics of one track (constant memory, whatever its length)."""

    track: int
    n_classes: int
    first_s: float = math.inf
    last_s: float = 0.0
    frames: int = 0
    prob_sum: np.ndarray = field(init=False)
    label_counts: np.ndarray = field(init=False)
    longest: list[Stretch] = field(init=False)
    run_label: int = -1
    run: Stretch = field(default_factory=Stretch)

    def __post_init__(self) -> None:
        self.prob_sum = np.zeros(self.n_classes)
        self.label_counts = np.zeros(self.n_classes, int)
        self.longest = [Stretch() for _ in range(self.n_classes)]

    def add(self, time_s: float, raw: np.ndarray, label: int) -> None:
        self.first_s = min(self.first_s, time_s)
        self.last_s = time_s
        self.frames += 1
        self.prob_sum += raw
        self.label_counts[label] += 1
        if label == self.run_label:
            self.run.frames += 1
            self.run.end_s = time_s
        else:
            self.run_label, self.run = label, Stretch(1, time_s, time_s)
        if self.run.frames > self.longest[label].frames:
            self.longest[label] = Stretch(self.run.frames, self.run.start_s, self.run.end_s)

    def to_dict(self, class_names: Sequence[str], step_s: float) -> dict:
        """Summary of the track. A stretch of n frames lasts ``end - start + step_s`` seconds."""
        dominant = int(np.argmax(self.label_counts))
        mean = self.prob_sum / self.frames
        return {
            "track": self.track,
            "first_s": round(self.first_s, 3),
            "last_s": round(self.last_s, 3),
            "frames": self.frames,
            "mean_probabilities": {c: round(float(p), 6) for c, p in zip(class_names, mean, strict=True)},
            "dominant": class_names[dominant],
            "dominant_share": round(float(self.label_counts[dominant] / self.frames), 4),
            "longest": {
                c: {"frames": s.frames, "start_s": round(s.start_s, 3) if s.frames else None,
                    "end_s": round(s.end_s, 3) if s.frames else None,
                    "seconds": round(s.end_s - s.start_s + step_s, 3) if s.frames else 0.0}
                for c, s in zip(class_names, self.longest, strict=True)
            },
        }  # fmt: skip


def summary_csv_header(class_names: Sequence[str]) -> list[str]:
    return ["track", "first_s", "last_s", "frames", "dominant", "dominant_share",
            *(f"mean_{c}" for c in class_names), *(f"longest_{c}_s" for c in class_names)]  # fmt: skip


def write_summary(path: str | os.PathLike, tracks: list[dict], meta: dict, class_names: list[str]) -> None:
    """The per-track summary as JSON (``meta`` + ``tracks``) or CSV (one row per track), atomically."""
    if Path(path).suffix.lower() == ".csv":
        with csv_rows(path, summary_csv_header(class_names)) as rows:
            for t in tracks:
                rows.writerow([t["track"], t["first_s"], t["last_s"], t["frames"], t["dominant"],
                               t["dominant_share"], *t["mean_probabilities"].values(),
                               *(s["seconds"] for s in t["longest"].values())])  # fmt: skip
        return
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({**meta, "tracks": tracks}, indent=1) + "\n", encoding="utf-8")


def save_plot(
    timelines: Sequence[tuple[str, Timeline]], class_names: list[str], path: str | os.PathLike, title: str
) -> None:
    """One emotion-over-time panel per (name, timeline), stacked, as a PNG. matplotlib is imported here
    only, and drawn without pyplot (Agg canvas), so no global backend is changed and no display is
    needed."""
    require_train("ferkit video --plot", ("matplotlib",))
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(1, len(timelines))
    fig = Figure(figsize=(10, 1.2 + 2.4 * n), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, timeline) in zip(axes, timelines, strict=False):
        times, means = timeline.series()
        for i, cls in enumerate(class_names):
            ax.plot(times, means[:, i], label=cls, linewidth=1.2, marker="." if len(times) < 60 else None)
        ax.set(ylabel="probability", ylim=(0, 1), title=name)
    if not timelines:
        axes[0].set_title("no face was found")
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", ncols=min(len(class_names), 7), fontsize="small")
    fig.suptitle(title)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
