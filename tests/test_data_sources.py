"""Loading every supported source and format; bad input yields clear messages, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import face, make_tar, make_zip

from ferkit.data import load_dataset
from ferkit.data.fer2013_csv import FER2013_CLASSES
from ferkit.errors import FerkitError


def test_fer_csv_rows_splits_labels_and_bad_rows(fer_csv):
    ds = load_dataset(fer_csv)
    assert ds.class_names == FER2013_CLASSES
    assert len(ds) == 13
    assert ds.pixels.shape == (13, 48, 48, 1)
    assert sorted(set(ds.splits)) == ["test", "train", "val"]
    assert (ds.splits == "train").sum() == 6
    np.testing.assert_array_equal(ds.take([0])[0, ..., 0], face(0))
    assert ds.labels[:7].tolist() == list(range(7))
    reasons = dict(ds.skipped)
    assert set(reasons) == {"fer2013.csv:15", "fer2013.csv:16", "fer2013.csv:17"}
    assert "expected 2304" in reasons["fer2013.csv:15"]
    assert "non-numeric" in reasons["fer2013.csv:16"]
    assert "outside 0..6" in reasons["fer2013.csv:17"]


def test_fer_csv_strict_names_the_line(fer_csv):
    with pytest.raises(FerkitError, match=r"fer2013.csv:15: pixels has 100 values"):
        load_dataset(fer_csv, strict=True)


def test_csv_with_wrong_header_is_refused(tmp_path):
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(FerkitError, match=r"other.csv: not a FER2013 CSV: missing column"):
        load_dataset(bad)


def test_messy_tree_every_format_loads_and_bad_files_are_listed(messy_tree):
    ds = load_dataset(messy_tree, image_size=32)
    skipped = dict(ds.skipped)
    assert set(skipped) == {"train/happy/truncated.jpg", "train/sad/empty.jpg", "test/sad/notes.jpg"}
    assert "truncated" in skipped["train/happy/truncated.jpg"]
    assert "0 bytes" in skipped["train/sad/empty.jpg"]
    assert "not an image" in skipped["test/sad/notes.jpg"]
    assert dict(ds.ignored) == {"README.txt": "not inside a class folder"}
    loaded = set(ds.sources.tolist())
    for name in ("photo.heic", "cmyk.jpg", "deep16.png", "anim.gif", "pic.webp", "pic.tiff", "palette.png"):
        assert any(s.endswith(name) for s in loaded), name
    assert ds.pixels.shape[1:] == (32, 32, 3)  # colour data stays colour under color="auto"
    modes = dict(zip(ds.sources.tolist(), ds.orig_modes.tolist(), strict=True))
    assert modes["train/happy/photo.heic"] == "RGB"
    assert modes["train/happy/cmyk.jpg"] == "CMYK"
    assert modes["train/happy/deep16.png"].startswith("I")


def test_sixteen_bit_png_is_scaled_not_clipped(messy_tree):
    ds = load_dataset(messy_tree, image_size=40, color="gray")
    i = ds.sources.tolist().index("train/happy/deep16.png")
    np.testing.assert_array_equal(ds.take([i])[0, ..., 0], face(3, 40))


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    from ferkit.data.decode import decode_bytes

    arr = np.zeros((30, 50), np.uint8)
    arr[:, :25] = 255  # stored: left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: white ends up on top
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    out = decode_bytes(path.read_bytes(), 16, "gray").pixels[..., 0].astype(int)
    assert out[:6].mean() > 200 and out[-6:].mean() < 50
    assert abs(out[:, :6].mean() - out[:, -6:].mean()) < 20


def test_grayscale_folder_is_stored_single_channel(synthetic_tree):
    ds = load_dataset(synthetic_tree)
    assert ds.pixels.shape[1:] == (48, 48, 1)
    assert ds.layout == "split-folders"
    assert ds.class_counts()["train"]["happy"] == 16
    assert load_dataset(synthetic_tree, color="rgb").channels == 3


@pytest.mark.parametrize("kind", ["zip", "tar", "zip-wrapped", "tar-wrapped"])
def test_archives_of_folders_equal_the_folder(synthetic_tree, tmp_path, kind):
    wrap = "inner/" if kind.endswith("wrapped") else ""
    maker, suffix = (make_zip, ".zip") if kind.startswith("zip") else (make_tar, ".tar.gz")
    archive = maker(synthetic_tree, tmp_path / f"data{suffix}", wrap)
    a, b = load_dataset(synthetic_tree), load_dataset(archive)
    assert a.class_names == b.class_names and len(a) == len(b)
    order_a, order_b = np.argsort(a.sources), np.argsort(b.sources)
    np.testing.assert_array_equal(a.images[order_a], b.images[order_b])
    np.testing.assert_array_equal(a.labels[order_a], b.labels[order_b])


def test_archive_holding_a_csv(fer_csv, tmp_path):
    archive = make_zip(fer_csv.parent, tmp_path / "csv.zip")
    ds = load_dataset(archive)
    assert len(ds) == 13 and ds.layout == "csv"


def test_single_pool_layout(tmp_path, synthetic_tree):
    pool = synthetic_tree / "train"
    ds = load_dataset(pool)
    assert ds.layout == "class-folders"
    assert ds.split_names() == ["all"]
    assert len(ds.class_names) == 5


def test_clear_errors_for_bad_sources(tmp_path):
    with pytest.raises(FerkitError, match="no such file"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(FerkitError, match="not a dataset source"):
        load_dataset(tmp_path / "x.txt")
    (tmp_path / "broken.zip").write_bytes(b"PK not really")
    with pytest.raises(FerkitError, match="cannot read archive"):
        load_dataset(tmp_path / "broken.zip")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat/a.png").write_bytes(b"")
    with pytest.raises(FerkitError, match="no files inside class folders"):
        load_dataset(tmp_path / "flat")


def test_cache_hit_returns_same_data_without_decoding(synthetic_tree, monkeypatch):
    first = load_dataset(synthetic_tree)
    import ferkit.data.dataset as dataset_mod

    def boom(*a, **k):
        raise AssertionError("decoded again despite a cache hit")

    monkeypatch.setattr(dataset_mod, "_build", boom)
    second = load_dataset(synthetic_tree)
    assert isinstance(second.pixels, np.memmap)
    np.testing.assert_array_equal(first.images, second.images)


def test_cache_key_depends_on_options(synthetic_tree):
    assert load_dataset(synthetic_tree, image_size=24).image_size == 24
    assert load_dataset(synthetic_tree, image_size=32).image_size == 32


def test_parallel_decode_equals_inline(tmp_path):
    from ferkit.data.synthetic import make_synthetic_folders

    root = make_synthetic_folders(tmp_path / "big", per_class=60, test_per_class=0)
    inline = load_dataset(root, workers=1, cache=False)
    parallel = load_dataset(root, workers=2, cache=False)
    np.testing.assert_array_equal(inline.images, parallel.images)
    assert inline.sources.tolist() == parallel.sources.tolist()
