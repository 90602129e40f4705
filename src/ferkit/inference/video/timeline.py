"""Emotion timelines per track in bounded memory, for the ``--plot`` of a video."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np


class Timeline:
    """Mean class probabilities per time bin, in at most ``max_bins`` bins.

    When time runs past the last bin, neighbouring bins merge and the bin width doubles, so memory
    stays bounded however long the video is, and the plot keeps an even resolution.
    """

    def __init__(self, n_classes: int, max_bins: int = 2048, width_s: float = 0.04):
        self.max_bins = max_bins - max_bins % 2
        self.width = width_s
        self.sums = np.zeros((self.max_bins, n_classes))
        self.times = np.zeros(self.max_bins)  # sum of the samples' times: points sit at their mean time
        self.counts = np.zeros(self.max_bins)
        self.last = -1

    def add(self, time_s: float, probabilities: np.ndarray) -> None:
        while (i := int(max(time_s, 0.0) // self.width)) >= self.max_bins:
            half = self.max_bins // 2
            self.sums[:half] = self.sums.reshape(half, 2, -1).sum(1)
            self.times[:half] = self.times.reshape(half, 2).sum(1)
            self.counts[:half] = self.counts.reshape(half, 2).sum(1)
            self.sums[half:], self.times[half:], self.counts[half:] = 0, 0, 0
            self.width *= 2
            self.last //= 2
        self.sums[i] += probabilities
        self.times[i] += time_s
        self.counts[i] += 1
        self.last = max(self.last, i)

    def series(self, gap_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Mean time (s) and mean probabilities of each bin that saw a face. Lines bridge short gaps; a
        NaN row is inserted where no face was seen for more than ``gap_s`` (and 3 bins): a visible break."""
        idx = np.flatnonzero(self.counts[: self.last + 1])
        times = self.times[idx] / self.counts[idx]
        means = self.sums[idx] / self.counts[idx, None]
        breaks = np.flatnonzero(np.diff(times) > max(gap_s, 3 * self.width)) + 1
        return np.insert(times, breaks, np.nan), np.insert(means, breaks, np.nan, axis=0)


class TrackTimelines:
    """Timelines of live tracks and of the ``keep`` longest ended ones: bounded memory."""

    def __init__(self, n_classes: int, width_s: float, keep: int):
        self.n_classes, self.width, self.keep = n_classes, width_s, keep
        self.live: dict[int, tuple[int, Timeline]] = {}
        self.ended: list[tuple[int, int, Timeline]] = []  # min-heap on (frames, -track)

    def add(self, track: int, time_s: float, probs: np.ndarray) -> None:
        frames, tl = self.live.get(track) or (0, Timeline(self.n_classes, 512, self.width))
        tl.add(time_s, probs)
        self.live[track] = (frames + 1, tl)

    def end(self, tracks: Sequence[int]) -> None:
        for t in tracks:
            if t in self.live:
                frames, tl = self.live.pop(t)
                heapq.heappush(self.ended, (frames, -t, tl))
                if len(self.ended) > self.keep:
                    heapq.heappop(self.ended)

    def longest(self) -> list[tuple[str, Timeline]]:
        self.end(list(self.live))
        best = sorted(self.ended, key=lambda e: (-e[0], -e[1]))[: self.keep]
        return [(f"track {-t} ({frames} frames)", tl) for frames, t, tl in sorted(best, key=lambda e: -e[1])]
