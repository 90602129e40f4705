"""Controlled shifts of face crops (framing, resolution, JPEG, blur, noise, light, rotation, occlusion,
colour), each at a few severities, for the robustness benchmark (ImageNet-C style).

NumPy + OpenCV only. Every corruption maps one uint8 (H, W, 1|3) crop to another; sizes are
relative to the crop's side and written "in 48-px units" (FER2013's size), so a 2-px shift moves a
200-px photo crop by 2/48 of its side. Random choices (shift direction, rotation sign, noise) come
from a generator seeded by the image's index, so every model sees the same corrupted images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ferkit.inference.detect import Box, square_crop

REF = 48.0  # severities are given in pixels of a 48-px crop
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))


@dataclass(frozen=True)
class Face:
    """A face crop as the recognizer gets it, and (for photos) its surroundings for re-cropping.

    ``context`` holds the face at ``box``; `crop` cuts the square crop with ``margin`` from it, so a
    framing corruption can move or widen the crop over real pixels instead of padding.
    """

    context: np.ndarray
    box: Box
    margin: float

    @property
    def has_context(self) -> bool:
        """Pixels around the crop exist (a photo), so the margin can be changed."""
        return self.context.shape[:2] != (self.box[3], self.box[2])

    def crop(self, margin: float | None = None) -> np.ndarray:
        return square_crop(self.context, self.box, self.margin if margin is None else margin)

    @classmethod
    def of_crop(cls, crop: np.ndarray) -> Face:
        """A stored face crop (FER2013): no surroundings, the crop is the whole context."""
        return cls(crop, (0, 0, crop.shape[1], crop.shape[0]), 0.0)


Apply = Callable[[Face, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Corruption:
    """One shift at one severity: ``family`` (e.g. ``blur``) and ``level`` (e.g. ``sigma 1``)."""

    family: str
    level: str
    apply: Apply
    photos_only: bool = False  # needs a face's surroundings (the detector margin)


def _affine(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w, c = img.shape
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out.reshape(h, w, c)


def reframe(face: Face, m: np.ndarray) -> np.ndarray:
    """The crop moved by the affine map ``m`` (2x3, crop pixels): over the photo's real surroundings
    when there are some (the map is applied to the context, then the crop is cut), else with the
    crop's border reflected (as training's augmentation fills it)."""
    if not face.has_context:
        return _affine(face.crop(), m)
    x, y, w, h = face.box
    side = max(1, round(max(w, h) * (1 + face.margin)))  # where square_crop puts the crop
    origin = np.float32([round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)])
    moved = m.astype(np.float32).copy()
    moved[:, 2] += origin - moved[:, :2] @ origin  # the same map in context coordinates
    return Face(_affine(face.context, moved), face.box, face.margin).crop()


def _centre(face: Face) -> float:
    _, _, w, h = face.box
    return (max(1, round(max(w, h) * (1 + face.margin))) - 1) / 2


def shift(px: float) -> Apply:
    """Move the face by ``px`` (48-px units) in one of four directions, chosen per image."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        dx, dy = DIRECTIONS[rng.integers(4)]
        d = px * 2 * (_centre(face) + 0.5) / REF
        return reframe(face, np.float32([[1, 0, dx * d], [0, 1, dy * d]]))

    return f


def scale(factor: float) -> Apply:
    """Zoom about the centre: ``factor`` > 1 shows the face larger (tighter crop)."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        c = _centre(face)
        return reframe(face, cv2.getRotationMatrix2D((c, c), 0.0, factor))

    return f


def rotate(degrees: float) -> Apply:
    """In-plane rotation by ±``degrees`` (sign chosen per image)."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        c = _centre(face)
        return reframe(face, cv2.getRotationMatrix2D((c, c), degrees * rng.choice((-1, 1)), 1.0))

    return f


def margin(value: float) -> Apply:
    """The detector's square crop with another margin (the default is 0.2 of the box side)."""
    return lambda face, rng: face.crop(value)


def resolution(side: int) -> Apply:
    """Downsample to ``side`` px (area filter), as a small or distant face arrives."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        img = face.crop()
        if img.shape[0] <= side:
            return img
        return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA).reshape(side, side, -1)

    return f


def jpeg(quality: int) -> Apply:
    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        img = face.crop()
        _, buf = cv2.imencode(".jpg", img[..., ::-1] if img.shape[2] == 3 else img,
                               [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED if img.shape[2] == 3 else cv2.IMREAD_GRAYSCALE)
        return (out[..., ::-1] if img.shape[2] == 3 else out).reshape(img.shape)

    return f


def blur(sigma: float) -> Apply:
    """Gaussian blur, ``sigma`` in 48-px units (out of focus, motion-free)."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        img = face.crop()
        s = sigma * img.shape[0] / REF
        return cv2.GaussianBlur(img, (0, 0), s, borderType=cv2.BORDER_REFLECT).reshape(img.shape)

    return f


def noise(std: float) -> Apply:
    """Additive Gaussian sensor noise, ``std`` in intensity units of 0..255."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        img = face.crop().astype(np.float32)
        return np.clip(img + rng.normal(0, std, img.shape), 0, 255).round().astype(np.uint8)

    return f


def gamma(value: float) -> Apply:
    """Intensity ** ``value``: < 1 brightens (over-exposed), > 1 darkens (under-exposed)."""
    lut = np.clip(((np.arange(256) / 255.0) ** value) * 255 + 0.5, 0, 255).astype(np.uint8)
    return lambda face, rng: lut[face.crop()]


def contrast(factor: float) -> Apply:
    """Contrast scaled by ``factor`` about the crop's mean intensity (flat light)."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        img = face.crop().astype(np.float32)
        return np.clip((img - img.mean()) * factor + img.mean(), 0, 255).round().astype(np.uint8)

    return f


def occlude(top: float, bottom: float, value: int) -> Apply:
    """A full-width band of rows [``top``, ``bottom``) (fractions of the side) set to ``value``."""

    def f(face: Face, rng: np.random.Generator) -> np.ndarray:
        img = face.crop().copy()
        h = img.shape[0]
        img[round(top * h) : round(bottom * h)] = value
        return img

    return f


def swap_colour(face: Face, rng: np.random.Generator) -> np.ndarray:
    """Colour → gray, gray → a warm tint (a sepia-like colour cast)."""
    img = face.crop()
    if img.shape[2] == 3 and not (img[..., 0] == img[..., 1]).all():
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
    gray = img[..., :1].astype(np.float32)
    return np.clip(gray * np.float32([1.0, 0.85, 0.65]), 0, 255).round().astype(np.uint8)


def suite() -> list[Corruption]:
    """The benchmark's shifts: 12 families, 1–4 severities each."""
    c = Corruption
    return [
        *(c("shift", f"{p} px", shift(p)) for p in (2, 4, 6)),
        c("scale", "-10 %", scale(0.9)),
        c("scale", "+10 %", scale(1.1)),
        *(c("margin", f"{m:g}", margin(m), photos_only=True) for m in (0.0, 0.1, 0.3, 0.4)),
        *(c("resolution", f"{s} px", resolution(s)) for s in (40, 32, 24)),
        *(c("jpeg", f"q{q}", jpeg(q)) for q in (40, 20, 10)),
        *(c("blur", f"sigma {s:g}", blur(s)) for s in (0.5, 1.0, 2.0)),
        *(c("noise", f"std {s}", noise(s)) for s in (8, 16, 24)),
        c("gamma", "0.5", gamma(0.5)),
        c("gamma", "2", gamma(2.0)),
        c("contrast", "x0.5", contrast(0.5)),
        c("contrast", "x0.25", contrast(0.25)),
        *(c("rotation", f"{d} deg", rotate(d)) for d in (10, 20, 30)),
        c("occlusion", "eyes", occlude(0.28, 0.50, 0)),
        c("occlusion", "lower face", occlude(0.65, 1.0, 200)),
        c("colour", "swap", swap_colour),
    ]


def corrupt(faces: list[Face], corruption: Corruption | None, seed: int = 0) -> list[np.ndarray]:
    """The crops of ``faces`` under ``corruption`` (None: the clean crops); seeded per image."""
    if corruption is None:
        return [f.crop() for f in faces]
    return [corruption.apply(f, np.random.default_rng([seed, i])) for i, f in enumerate(faces)]
