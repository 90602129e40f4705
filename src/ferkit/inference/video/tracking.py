"""Track ids for face boxes across frames, and the size the detector sees on each detection frame."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ferkit.inference.detect import Detection, clip_box

MIN_FACE_PX = 40  # smallest face height the detector is given on a downscaled copy


class FaceTracker:
    """Track ids for face boxes: norfair's Kalman filter on the two box corners, IoU association.

    Call `update` once per processed frame, with the detections on detection frames and None in
    between. A track is reported on a detection frame when a detection matched it (with the detected
    box) and on the frames that follow until the next detection (with the box the motion model
    predicts); it survives ``max_gap`` frames without a detection, then ends.
    """

    def __init__(self, max_gap: int, detect_every: int = 1, min_iou: float = 0.1):
        from norfair import Tracker
        from norfair.distances import VectorizedDistance

        self.detect_every = detect_every
        self._tracker = Tracker(
            distance_function="iou",
            distance_threshold=1 - min_iou,
            hit_counter_max=max(max_gap, 2 * detect_every),
            initialization_delay=0,  # every detected face gets an id at once
            past_detections_length=0,
        )
        # norfair's IoU expects ordered corners; a lost track's predicted corners can cross
        self._tracker.distance_function = VectorizedDistance(_iou_distance)
        self._frame = 0
        self._last_detection_frame = -1
        self._alive: set[int] = set()

    def update(
        self, detections: Sequence[Detection] | None, size: tuple[int, int]
    ) -> tuple[list[tuple[int, Detection, bool]], list[int]]:
        """The tracked faces of this frame as (track id, detection, detected) largest first, and the
        ids of the tracks that ended since the last call. ``size`` is the frame's (width, height)."""
        from norfair import Detection as Point

        self._frame += 1
        if detections is None:
            objects = self._tracker.update(None)
        else:
            self._last_detection_frame = self._frame
            points = [
                Point(np.array([[x, y], [x + w, y + h]], float), data=(self._frame, d))
                for d in detections
                for x, y, w, h in [d.box]
            ]
            objects = self._tracker.update(points, period=self.detect_every)
        found = []
        for obj in objects:
            frame, det = obj.last_detection.data
            if frame == self._frame:
                found.append((obj.id, det, True))
            elif frame == self._last_detection_frame:
                (x0, y0), (x1, y1) = obj.estimate
                box = clip_box(x0, y0, x1 - x0, y1 - y0, *size)
                if min(box[2:]) >= 8:
                    found.append((obj.id, Detection(box, det.score), False))
        alive = {o.id for o in self._tracker.tracked_objects if o.id is not None and o.hit_counter >= 0}
        ended = sorted(self._alive - alive)
        self._alive = alive
        return sorted(found, key=lambda f: -f[1].box[2] * f[1].box[3]), ended


def _iou_distance(candidates: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """norfair's ``1 - IoU`` between (N, 4) and (K, 4) corner boxes, after putting corners in order."""
    from norfair.distances import iou

    def ordered(b: np.ndarray) -> np.ndarray:
        low = np.minimum(b[:, :2], b[:, 2:])
        return np.concatenate([low, np.maximum(np.maximum(b[:, :2], b[:, 2:]), low + 1e-3)], axis=1)

    return iou(ordered(candidates), ordered(objects))


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
