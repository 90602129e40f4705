"""Robustness benchmark: the corruptions do what they say, photo re-crops match predict's crop, the
ImageNet-C mean weighs families equally."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ferkit.evaluation import robustness
from ferkit.evaluation.corruptions import Face, corrupt, reframe, suite
from ferkit.inference.detect import square_crop


def dot(size: int = 48, at: tuple[int, int] = (24, 24)) -> np.ndarray:
    img = np.zeros((size, size, 1), np.uint8)
    img[at[1], at[0]] = 255
    return img


def photo(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize("box", [(50, 30, 40, 44), (0, 0, 30, 30), (140, 90, 20, 30), (51, 31, 41, 45)])
def test_photo_face_crop_is_predicts_crop(box):
    image = photo()
    face = robustness.around(image, box, 0.2)
    assert face.has_context
    assert np.array_equal(face.crop(), square_crop(image, box, 0.2))
    assert np.array_equal(face.crop(0.4), square_crop(image, box, 0.4))


def test_identity_reframe_keeps_the_crop():
    face = robustness.around(photo(), (50, 30, 40, 44), 0.2)
    identity = np.float32([[1, 0, 0], [0, 1, 0]])
    assert np.array_equal(reframe(face, identity), face.crop())
    crop = Face.of_crop(dot())
    assert not crop.has_context
    assert np.array_equal(reframe(crop, identity), crop.crop())


def test_shift_moves_the_face_by_its_size_in_48px_units():
    (six,) = [c for c in suite() if c.family == "shift" and c.level == "6 px"]
    out = corrupt([Face.of_crop(dot())], six)[0][..., 0]
    y, x = np.unravel_index(out.argmax(), out.shape)
    assert sorted((abs(int(x) - 24), abs(int(y) - 24))) == [0, 6]
    # on a 96-px crop the same severity moves the face twice as many pixels
    big = corrupt([Face.of_crop(dot(96, (48, 48)))], six)[0][..., 0]
    y, x = np.unravel_index(big.argmax(), big.shape)
    assert max(abs(int(x) - 48), abs(int(y) - 48)) == 12


def test_photo_shift_uses_real_surroundings():
    image = photo()
    face = robustness.around(image, (60, 30, 40, 40), 0.2)  # crop x 56..104, y 26..74
    (two,) = [c for c in suite() if c.family == "shift" and c.level == "2 px"]
    out = corrupt([face], two)[0]
    dx, dy = [(1, 0), (-1, 0), (0, 1), (0, -1)][np.random.default_rng([0, 0]).integers(4)]
    x0, y0 = 56 - 2 * dx, 26 - 2 * dy  # content moves by +d: the window moves by -d
    assert np.array_equal(out, image[y0 : y0 + 48, x0 : x0 + 48])


def test_every_corruption_is_seeded_and_keeps_a_valid_crop():
    faces = [Face.of_crop(np.random.default_rng(1).integers(0, 256, (48, 48, 1), dtype=np.uint8)),
             robustness.around(photo(2), (50, 30, 40, 44), 0.2)]  # fmt: skip
    clean = corrupt(faces, None)
    for c in suite():
        a, b = corrupt(faces, c, seed=3), corrupt(faces, c, seed=3)
        for x, y, ref, face in zip(a, b, clean, faces, strict=True):
            if c.photos_only and not face.has_context:
                continue
            assert np.array_equal(x, y), c
            assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] in (1, 3), c
            if c.family not in ("resolution", "margin", "colour"):
                assert x.shape == ref.shape, c
            if c.family not in ("colour",) and x.shape == ref.shape:
                assert not np.array_equal(x, ref), f"{c} left the crop unchanged"


def test_colour_swap_goes_both_ways():
    (swap,) = [c for c in suite() if c.family == "colour"]
    gray = np.full((8, 8, 1), 100, np.uint8)
    tinted = swap.apply(Face.of_crop(gray), np.random.default_rng(0))
    assert tinted.shape == (8, 8, 3) and tinted[0, 0, 0] > tinted[0, 0, 2]
    back = swap.apply(Face.of_crop(tinted), np.random.default_rng(0))
    assert back.shape == (8, 8, 1)


def test_run_skips_photo_only_shifts_on_crops_and_counts_missing_faces():
    faces = [Face.of_crop(np.full((48, 48, 1), v, np.uint8)) for v in (30, 220)] + [None]
    labels = np.array([0, 1, 1])

    def bright(crops):  # class 1 when the crop is bright
        m = np.array([c.mean() for c in crops])
        return np.stack([m < 128, m >= 128], 1).astype(np.float32)

    rows = robustness.run("d", faces, labels, bright)
    assert rows[0].family == robustness.CLEAN and rows[0].accuracy == pytest.approx(2 / 3)
    assert "margin" not in {r.family for r in rows}
    assert all(r.n == 3 for r in rows)


def test_mean_weighs_families_equally():
    r = lambda fam, lvl, acc: robustness.Row("d", fam, lvl, 10, acc, 0.0)  # noqa: E731
    rows = [r("clean", "", 0.8), r("a", "1", 0.6), r("a", "2", 0.4), r("a", "3", 0.2), r("b", "1", 0.7)]
    (s,) = robustness.summarise(rows)
    assert s.families == {"a": pytest.approx(0.4), "b": pytest.approx(0.7)}
    assert s.mean == pytest.approx(0.55) and s.relative == pytest.approx(0.55 / 0.8)


def test_cli_evaluate_robustness_writes_every_shift(tmp_path):
    from typer.testing import CliRunner

    from ferkit.cli.main import app
    from ferkit.data.synthetic import make_synthetic_folders

    data = make_synthetic_folders(tmp_path / "faces", per_class=1, test_per_class=1)
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["evaluate", "fast", "--data", str(data), "--out", str(out),
                                   "--gradcam", "0", "--robustness"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "robustness: mean" in res.output
    rows = (out / "robustness.csv").read_text().splitlines()
    expected = [c for c in suite() if not c.photos_only]
    assert len(rows) == 1 + 1 + len(expected)  # header, clean, the crop shifts
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["robustness"]["mean"] <= 1
    assert metrics["robustness"]["clean"] == pytest.approx(metrics["accuracy"])
