"""Generated videos of real faces moving over a background, with every face's true box and identity.

Tracking quality can only be measured against ground truth, and tests must not depend on files
outside the package, so the tests and `benchmarks/video_speed.py` render their videos here from the
bundled photo (``assets/astronaut.jpg``, a real face that YuNet detects). Each person is a different
variant of that face (colour, mirrored grey, mirrored and tinted): identical faces would only make
tracking harder, as nothing but motion tells them apart.

A person's appearance is a list of keyframes ``(frame, cx, cy)``; between keyframes the face moves
linearly, before the first and after the last it is off screen. People listed later are drawn on
top, so crossings occlude.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np

from ferkit.errors import FerkitError
from ferkit.inference.detect import Box

# The head in assets/astronaut.jpg (512x512) with some context, and the face box YuNet finds in it.
HEAD = (140, 20, 170, 200)  # x, y, w, h
FACE_IN_HEAD = (38, 43, 91, 113)


@dataclass(frozen=True)
class Appearance:
    """One continuous stretch of a person on screen (ground-truth identity ``person``)."""

    person: int
    height: int  # face box height in pixels
    keys: tuple[tuple[int, float, float], ...]  # (frame, face centre x, face centre y)

    def centre(self, frame: int) -> tuple[float, float] | None:
        frames = [k[0] for k in self.keys]
        if not frames[0] <= frame <= frames[-1]:
            return None
        x = float(np.interp(frame, frames, [k[1] for k in self.keys]))
        y = float(np.interp(frame, frames, [k[2] for k in self.keys]))
        return x, y


@dataclass(frozen=True)
class TruthBox:
    """A face in one frame: which appearance (an index into the scene), its box, how visible it is."""

    appearance: int
    person: int
    box: Box
    visible: float  # share of the face box not covered by faces drawn over it


def _heads() -> list[np.ndarray]:
    """Three RGB head images from the bundled photo: colour, mirrored grey, mirrored warm tint."""
    with resources.as_file(resources.files("ferkit") / "assets" / "astronaut.jpg") as path:
        bgr = cv2.imread(str(path))
    if bgr is None:
        raise FerkitError("assets/astronaut.jpg is missing from the package")
    x, y, w, h = HEAD
    head = cv2.cvtColor(bgr[y : y + h, x : x + w], cv2.COLOR_BGR2RGB)
    grey = np.repeat(cv2.cvtColor(head, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)[:, ::-1]
    tinted = np.clip(head[:, ::-1].astype(np.float32) * (1.15, 0.95, 0.8), 0, 255).astype(np.uint8)
    return [head, np.ascontiguousarray(grey), tinted]


def _background(width: int, height: int) -> np.ndarray:
    """A smooth colour gradient with a little fixed texture (plain backgrounds are unrealistic)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([60 + 80 * xx / width, 90 + 40 * yy / height, 120 - 50 * xx / width], axis=2)
    noise = np.random.default_rng(0).normal(0, 6, (height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    base += cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(base, 0, 255).astype(np.uint8)


def _mask(w: int, h: int) -> np.ndarray:
    """A soft elliptical alpha mask, so pasted heads have no rectangular edges."""
    m = np.zeros((h, w), np.float32)
    cv2.ellipse(m, (w // 2, h // 2), (max(1, w // 2 - 2), max(1, h // 2 - 2)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(m, (0, 0), max(1.0, w / 30))[..., None]


def render(
    path: str | os.PathLike,
    scene: Sequence[Appearance],
    frames: int,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    fourcc: str = "mp4v",
) -> list[list[TruthBox]]:
    """Write the video and return, per frame, the true face boxes (clipped to the frame).

    Args:
        path: output file (``.mp4`` for mp4v; ``.avi`` for the lossless FFV1, whose identical
            frames decode identically).
        scene: the appearances, drawn in order (later ones on top).
        frames: number of frames.
        size: (width, height).
        fps: frame rate written in the container.
        fourcc: OpenCV codec code.

    Returns:
        For each frame the faces on screen with their box and visible share.
    """
    width, height = size
    heads = _heads()
    background = _background(width, height)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not out.isOpened():
        raise FerkitError(f"{path}: OpenCV cannot write {fourcc} video here")
    truth: list[list[TruthBox]] = []
    try:
        for f in range(frames):
            frame = background.copy()
            boxes: list[tuple[int, Appearance, tuple[float, float, float, float]]] = []
            for i, app in enumerate(scene):
                centre = app.centre(f)
                if centre is not None:
                    boxes.append((i, app, _paste(frame, heads[app.person % len(heads)], app.height, centre)))
            truth.append(_truth(boxes, width, height))
            out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        out.release()
    return truth


def _paste(frame: np.ndarray, head: np.ndarray, face_h: int, centre: tuple[float, float]):
    """Blend the head scaled so its face box is ``face_h`` tall with the face centred at ``centre``;
    returns the face box (x, y, w, h) as floats, possibly partly outside the frame."""
    scale = face_h / FACE_IN_HEAD[3]
    hw, hh = max(1, round(head.shape[1] * scale)), max(1, round(head.shape[0] * scale))
    img = cv2.resize(head, (hw, hh), interpolation=cv2.INTER_AREA).astype(np.float32)
    fx, fy, fw, fh = (v * scale for v in FACE_IN_HEAD)
    x0, y0 = round(centre[0] - fx - fw / 2), round(centre[1] - fy - fh / 2)
    H, W = frame.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + hw, W), min(y0 + hh, H)
    if cx0 < cx1 and cy0 < cy1:
        alpha = _mask(hw, hh)[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        part = img[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        region = frame[cy0:cy1, cx0:cx1].astype(np.float32)
        frame[cy0:cy1, cx0:cx1] = (alpha * part + (1 - alpha) * region).astype(np.uint8)
    return (x0 + fx, y0 + fy, fw, fh)


def _truth(boxes, width: int, height: int) -> list[TruthBox]:
    """Clip each face box to the frame and measure how much of it later (upper) faces cover."""
    found = []
    for k, (i, app, (x, y, w, h)) in enumerate(boxes):
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        covered = np.zeros((round(y1 - y0), round(x1 - x0)), bool)
        for _, _, (ox, oy, ow, oh) in boxes[k + 1 :]:  # the whole head (≈ face box * 1.4) occludes
            ox, oy, ow, oh = ox - 0.2 * ow, oy - 0.2 * oh, 1.4 * ow, 1.4 * oh
            cx0, cy0 = round(max(ox - x0, 0)), round(max(oy - y0, 0))
            cx1, cy1 = round(min(ox + ow - x0, x1 - x0)), round(min(oy + oh - y0, y1 - y0))
            if cx0 < cx1 and cy0 < cy1:
                covered[cy0:cy1, cx0:cx1] = True
        box = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
        found.append(TruthBox(i, app.person, box, float(1 - covered.mean()) if covered.size else 0.0))
    return found


def crossing_scene(width: int, height: int, frames: int) -> list[Appearance]:
    """Three people: two walk across each other (the second passes in front of the first), the third
    leaves through the right edge early and comes back near the end (a long absence)."""
    h = round(height * 0.28)
    y = height * 0.45
    left, right = width * 0.18, width * 0.82
    out_x = width + 0.6 * h  # the whole face box is off screen
    t1, t2 = round(frames * 0.3), round(frames * 0.7)
    return [
        Appearance(0, h, ((0, left, y - 0.05 * height), (frames - 1, right, y - 0.05 * height))),
        Appearance(1, h, ((0, right, y + 0.1 * height), (frames - 1, left, y + 0.1 * height))),
        Appearance(2, round(h * 0.8), ((0, width * 0.75, height * 0.22), (t1, out_x, height * 0.22))),
        Appearance(2, round(h * 0.8), ((t2, out_x, height * 0.75), (frames - 1, width * 0.7, height * 0.75))),
    ]


def moving_scene(
    width: int, height: int, frames: int, people: int = 1, face_height: int | None = None
) -> list[Appearance]:
    """``people`` (1-3) faces drifting on their own smooth paths for the whole video, never crossing;
    face boxes ``face_height`` pixels tall (default 30 % of the frame for one person, else 22 %)."""
    if not 1 <= people <= 3:
        raise FerkitError(f"moving_scene: 1 to 3 people, not {people}")
    h = face_height or round(height * (0.3 if people == 1 else 0.22))
    lanes = [(0.5,), (0.28, 0.72), (0.2, 0.5, 0.8)][people - 1]
    scene = []
    for p, lane in enumerate(lanes):
        keys = tuple(
            (f, width * lane + width * 0.06 * np.sin(2 * np.pi * f / 90 + p),
             height * 0.5 + height * 0.18 * np.sin(2 * np.pi * f / 140 + 2 * p))
            for f in range(0, frames + 9, 10)
        )  # fmt: skip
        scene.append(Appearance(p, h, keys))
    return scene


def static_scene(width: int, height: int, frames: int) -> list[Appearance]:
    """Two faces that do not move."""
    h = round(height * 0.3)
    return [
        Appearance(0, h, ((0, width * 0.3, height * 0.5), (frames - 1, width * 0.3, height * 0.5))),
        Appearance(1, h, ((0, width * 0.7, height * 0.5), (frames - 1, width * 0.7, height * 0.5))),
    ]


@dataclass
class TrackQuality:
    """Tracking against ground truth, CLEAR-MOT style (boxes match at IoU >= ``min_iou``).

    ``ids`` holds, per appearance, the track ids matched to it; an **ID switch** is a matched track
    id that differs from the appearance's previous one; a **fragmentation** is a return to being
    tracked after frames where the (visible) face was not; faces covered by more than half are
    "don't care" (neither a miss nor, if reported, a false positive).
    """

    ids: dict[int, set[int]]
    id_switches: int
    fragmentations: int
    matched: int
    misses: int
    false_positives: int
    mean_iou: float


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N, 4) and (K, 4) ``x, y, w, h`` boxes."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def track_quality(
    truth: Sequence[Sequence[TruthBox]],
    tracked: dict[int, list[tuple[int, Box]]],
    min_iou: float = 0.5,
    min_visible: float = 0.5,
) -> TrackQuality:
    """Compare tracker output (frame → [(track id, box)]) with `render`'s ground truth."""
    from scipy.optimize import linear_sum_assignment

    ids: dict[int, set[int]] = {}
    last_id: dict[int, int] = {}
    was_tracked: dict[int, bool] = {}
    switches = frags = matched = misses = fps = 0
    ious: list[float] = []
    for frame, gts in enumerate(truth):
        out = tracked.get(frame, [])
        iou = box_iou([g.box for g in gts], [b for _, b in out])
        rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
        pairs = {r: c for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou}
        used = set(pairs.values())
        fps += sum(1 for c in range(len(out)) if c not in used)
        for r, g in enumerate(gts):
            if r in pairs:
                track = out[pairs[r]][0]
                ids.setdefault(g.appearance, set()).add(track)
                switches += g.appearance in last_id and last_id[g.appearance] != track
                frags += was_tracked.get(g.appearance) is False
                last_id[g.appearance], was_tracked[g.appearance] = track, True
                matched += 1
                ious.append(float(iou[r, pairs[r]]))
            elif g.visible >= min_visible:
                misses += 1
                if g.appearance in was_tracked:
                    was_tracked[g.appearance] = False
    mean = float(np.mean(ious)) if ious else 0.0
    return TrackQuality(ids, switches, frags, matched, misses, fps, mean)
