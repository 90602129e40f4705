"""Fixtures built on the fly: tiny FER2013 CSVs, messy folder trees, archives, synthetic faces."""

from __future__ import annotations

import csv
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from ferkit.data.synthetic import make_synthetic_folders

pillow_heif.register_heif_opener()
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own dataset cache, so tests never see each other's decoded data."""
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def face(seed: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def write_fer_csv(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    return path


def pixels(img: np.ndarray) -> str:
    return " ".join(map(str, img.reshape(-1).tolist()))


@pytest.fixture
def fer_csv(tmp_path) -> Path:
    """12 good rows over the three Usage values (one duplicated across splits) and 3 bad rows."""
    rows = []
    for i in range(12):
        usage = ("Training", "Training", "PublicTest", "PrivateTest")[i % 4]
        rows.append((i % 7, pixels(face(i)), usage))
    rows.append((3, pixels(face(0)), "PublicTest"))  # duplicate of row 1 (Training): leakage
    rows.append((2, " ".join(["1"] * 100), "Training"))  # wrong pixel count -> line 15
    rows.append((1, pixels(face(99)).replace("1", "x", 1), "Training"))  # non-numeric -> line 16
    rows.append((9, pixels(face(98)), "Training"))  # label out of range -> line 17
    return write_fer_csv(tmp_path / "fer2013.csv", rows)


def _save(img: Image.Image, path: Path, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)


@pytest.fixture
def messy_tree(tmp_path) -> Path:
    """A pre-split colour folder dataset with every odd format and every kind of bad file."""
    root = tmp_path / "messy"
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8))
    gray = Image.fromarray(face(2, 64))
    _save(rgb, root / "train/happy/photo.heic")
    _save(rgb.convert("CMYK"), root / "train/happy/cmyk.jpg")
    _save(Image.fromarray(face(3, 40).astype(np.uint16) * 257), root / "train/happy/deep16.png")
    _save(gray, root / "train/happy/plain.bmp")
    _save(rgb, root / "train/sad/anim.gif")
    _save(rgb, root / "train/sad/pic.webp")
    _save(rgb, root / "train/sad/pic.tiff")
    _save(rgb.transpose(Image.FLIP_LEFT_RIGHT).convert("RGBA"), root / "train/sad/alpha.png")
    _save(Image.fromarray(face(4, 64)).convert("LA"), root / "train/sad/la.png")
    _save(rgb.convert("P"), root / "train/sad/palette.png")
    _save(gray, root / "test/happy/dup_of_plain.bmp")  # same pixels as train/happy/plain.bmp
    _save(gray, root / "test/sad/dup_conflicting.png")  # same pixels, other label
    full = root / "train/happy/full.jpg"
    _save(rgb, full)
    (root / "train/happy/truncated.jpg").write_bytes(full.read_bytes()[:300])
    (root / "train/sad/empty.jpg").write_bytes(b"")
    (root / "test/sad/notes.jpg").write_text("this is not an image\n")
    (root / "README.txt").write_text("a file outside any class folder\n")
    (root / "train/.DS_Store").write_bytes(b"\0\0")
    return root


@pytest.fixture
def synthetic_tree(tmp_path) -> Path:
    return make_synthetic_folders(tmp_path / "synthetic", per_class=16, test_per_class=4)


def make_zip(src: Path, out: Path, wrap: str = "") -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, f"{wrap}{p.relative_to(src).as_posix()}")
    return out


def make_tar(src: Path, out: Path, wrap: str = "") -> Path:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(src, arcname=wrap.rstrip("/") or ".")
    return out


TINY_TRAIN = [
    "model.name=test_efficientnet",
    "model.pretrained=none",
    "model.input_size=48",
    "train.batch_size=16",
    "train.threads=1",
    "train.checkpoint_every_minutes=null",
]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A small model trained once per test session on synthetic faces (5 classes, 48 px, 4 epochs).

    Its data folder is ``<run>/../faces`` (train 30/class, test 8/class).
    """
    from ferkit.training.config import load_config
    from ferkit.training.engine import Trainer

    root = tmp_path_factory.mktemp("tiny_run")
    data = make_synthetic_folders(root / "faces", per_class=30, test_per_class=8)
    cfg = load_config(None, [*TINY_TRAIN, f"data.path={data}", "stages.0.epochs=4", "augment.rotation=10"])
    mp = pytest.MonkeyPatch()
    mp.setenv("FERKIT_CACHE_DIR", str(root / "cache"))
    try:
        Trainer(cfg, root / "run").fit()
    finally:
        mp.undo()
    return root / "run"
