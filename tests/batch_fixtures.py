"""A small mixed collection for the batch tests: photos with and without a face, a broken file, a
short video of two still faces, and a manifest carrying its own columns."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.inference.moving_faces import render, static_scene

ASTRONAUT = resources.files("ferkit") / "assets" / "astronaut.jpg"


def make_collection(root: Path, photos: int = 4, video: bool = True) -> Path:
    """``root/photos``: ``photos`` face photos, a blank one, a broken one; ``root/clip.avi``."""
    folder = root / "photos"
    folder.mkdir(parents=True)
    with resources.as_file(ASTRONAUT) as src:
        big = Image.open(src).convert("RGB")
        for i in range(photos):  # distinct files: crops and mirror images of the photo
            im = big.crop((i * 8, 0, big.width - i * 8, big.height))
            (im.transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else im).save(folder / f"face{i}.jpg")
    Image.fromarray(np.full((90, 120, 3), 128, np.uint8)).save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    if video:
        render(root / "clip.avi", static_scene(320, 240, 12), 12, (320, 240), 10.0, fourcc="FFV1")
    return root


def copies(root: Path, n: int) -> Path:
    """``n`` differently named copies of the bundled photo (for jobs with many sources)."""
    root.mkdir(parents=True)
    with resources.as_file(ASTRONAUT) as src:
        for i in range(n):
            shutil.copy(src, root / f"p{i:03d}.jpg")
    return root
