"""Track ids for face boxes across frames, and the size the detector sees on each detection frame.

The tracker is a NumPy-only port of what ferkit used from norfair (tryolabs/norfair, BSD-3, via
``norfair-enough``): a constant-velocity Kalman filter per box corner coordinate, greedy matching by
``1 - IoU``, and a hit counter that keeps a track through short misses. Same arithmetic in the same
order, so the tracks and boxes are those norfair gave, without its SciPy dependency (143 MB of the
light install). Greedy matching (the smallest distance first) rather than an optimal assignment:
faces rarely overlap, and a global optimum can force a poor match to lower the sum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ferkit.inference.detect import Detection, clip_box

MIN_FACE_PX = 40  # smallest face height the detector is given on a downscaled copy


class CornerKalman:
    """Constant-velocity Kalman filter on the 4 corner coordinates (x0, y0, x1, y1), each axis
    independent, every coordinate observed at each update (norfair's ``OptimizedKalmanFilter``)."""

    def __init__(self, corners: np.ndarray, q: float = 0.1, r: float = 4.0):
        self.pos = np.array(corners, float)
        self.vel = np.zeros(4)
        self.pos_var = np.full(4, 10.0)
        self.pos_vel_cov = np.zeros(4)
        self.vel_var = np.ones(4)
        self.q, self.r = q, r

    def predict(self) -> None:
        self.pos += self.vel

    def update(self, corners: np.ndarray) -> None:
        error = corners - self.pos
        vel_plus_cov = self.pos_vel_cov + self.vel_var
        added = np.maximum(self.pos_var + self.pos_vel_cov + vel_plus_cov + self.q + self.r, 1e-12)
        inv = 1.0 / added
        gain_pos = 1 - self.r * inv
        gain_vel = vel_plus_cov * inv
        self.pos += gain_pos * error
        self.vel += gain_vel * error
        self.pos_var = gain_pos * self.r
        self.pos_vel_cov = gain_vel * self.r
        self.vel_var = np.maximum(self.vel_var + (self.q - gain_vel * gain_vel * added), 1e-12)


@dataclass
class Track:
    """One tracked face. ``hits`` goes down by one per frame and up by ``2 * period`` (at most the
    tracker's maximum) per matched detection; below zero the track ends."""

    id: int
    hits: int
    frame: int  # frame of the last matched detection
    detection: Detection
    kalman: CornerKalman


class FaceTracker:
    """Track ids for face boxes: a Kalman filter on the two box corners, IoU association.

    Call `update` once per processed frame, with the detections on detection frames and None in
    between. A track is reported on a detection frame when a detection matched it (with the detected
    box) and on the frames that follow until the next detection (with the box the motion model
    predicts); it survives ``max_gap`` frames without a detection, then ends.
    """

    def __init__(self, max_gap: int, detect_every: int = 1, min_iou: float = 0.1):
        self.detect_every = detect_every
        self.max_hits = max(max_gap, 2 * detect_every)
        self.max_distance = 1 - min_iou
        self._tracks: list[Track] = []
        self._count = 0
        self._frame = 0
        self._last_detection_frame = -1
        self._alive: set[int] = set()

    def update(
        self, detections: Sequence[Detection] | None, size: tuple[int, int]
    ) -> tuple[list[tuple[int, Detection, bool]], list[int]]:
        """The tracked faces of this frame as (track id, detection, detected) largest first, and the
        ids of the tracks that ended since the last call. ``size`` is the frame's (width, height)."""
        self._frame += 1
        self._tracks = [t for t in self._tracks if t.hits >= 0]
        for t in self._tracks:
            t.hits -= 1
            t.kalman.predict()
        if detections is not None:
            self._last_detection_frame = self._frame
            self._associate(list(detections))
        found = []
        for t in self._tracks:
            if t.hits < 0:
                continue
            if t.frame == self._frame:
                found.append((t.id, t.detection, True))
            elif t.frame == self._last_detection_frame:
                x0, y0, x1, y1 = t.kalman.pos
                box = clip_box(x0, y0, x1 - x0, y1 - y0, *size)
                if min(box[2:]) >= 8:
                    found.append((t.id, Detection(box, t.detection.score), False))
        alive = {t.id for t in self._tracks if t.hits >= 0}
        ended = sorted(self._alive - alive)
        self._alive = alive
        return sorted(found, key=lambda f: -f[1].box[2] * f[1].box[3]), ended

    def _associate(self, detections: list[Detection]) -> None:
        """Match detections to tracks (greedy on ``1 - IoU``); unmatched detections start tracks."""
        corners = np.array([[x, y, x + w, y + h] for x, y, w, h in (d.box for d in detections)], float)
        tracks = list(self._tracks)
        matched: set[int] = set()
        if detections and tracks:
            distances = iou_distance(corners, np.stack([t.kalman.pos for t in tracks]))
            for i, j in greedy_matches(distances, self.max_distance):
                track = tracks[j]
                track.hits = min(track.hits + 2 * self.detect_every, self.max_hits)
                track.frame, track.detection = self._frame, detections[i]
                track.kalman.update(corners[i])
                matched.add(i)
        for i, d in enumerate(detections):
            if i not in matched:
                self._count += 1
                self._tracks.append(
                    Track(self._count, self.detect_every, self._frame, d, CornerKalman(corners[i]))
                )


def greedy_matches(distances: np.ndarray, max_distance: float) -> list[tuple[int, int]]:
    """(row, column) pairs, the smallest distance first, each row and column once, below ``max_distance``."""
    flat = distances.ravel()
    rows, cols, pairs = set(), set(), []
    for idx in np.argsort(flat, kind="stable"):
        if flat[idx] >= max_distance:
            break
        r, c = divmod(int(idx), distances.shape[1])
        if r not in rows and c not in cols:
            pairs.append((r, c))
            rows.add(r)
            cols.add(c)
    return pairs


def iou_distance(candidates: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """``1 - IoU`` between (N, 4) and (K, 4) corner boxes, after putting corners in order (a lost
    track's predicted corners can cross)."""

    def ordered(b: np.ndarray) -> np.ndarray:
        low = np.minimum(b[:, :2], b[:, 2:])
        return np.concatenate([low, np.maximum(np.maximum(b[:, :2], b[:, 2:]), low + 1e-3)], axis=1)

    a, b = ordered(candidates), ordered(objects)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = np.maximum(a[:, None, :2], b[:, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), 2)
    union = area_a[:, None] + area_b - intersection
    return 1 - np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


class DetectionSize:
    """The size the detector sees on each detection frame: the copy downscaled to ``detect_size``
    while every tracked face stays at least `MIN_FACE_PX` tall in it, else the full frame; and the
    full frame once every ``probe_every`` detections (about once a second), where faces too small
    for the copy can appear. YuNet misses faces under ~36 px (measured), and detecting on 320 px
    instead of 640 costs about a quarter of the time."""

    def __init__(self, detect_size: int, probe_every: int):
        self.detect_size = detect_size
        self.probe_every = probe_every
        self.smallest = math.inf  # smallest tracked face height, in full-frame pixels
        self.count = 0

    def next(self, shape: tuple[int, ...]) -> int | None:
        """``max_side`` for this detection (None: the full frame, within the detector's own limit)."""
        scale = self.detect_size / max(shape[:2]) if self.detect_size else 1.0
        probe = self.count % self.probe_every == 0
        self.count += 1
        return self.detect_size if scale < 1 and not probe and self.smallest * scale >= MIN_FACE_PX else None

    def seen(self, heights: Sequence[int]) -> None:
        self.smallest = min(heights, default=math.inf)
