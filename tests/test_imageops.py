"""ferkit's NumPy resizers, zoom, grayscale, NMS and encoder against OpenCV, which the shipped models
were trained with (the light install has no OpenCV: these must compute what it computed)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.data.imageops import encode, resize, to_gray, zoom
from ferkit.errors import FerkitError
from ferkit.inference.detect import nms, to_bgr, window

RNG = np.random.default_rng(7)
# Smooth, photo-like content (pure noise would exaggerate fixed-point rounding differences)
PHOTO = cv2.GaussianBlur(RNG.integers(0, 256, (97, 131, 3), dtype=np.uint8), (0, 0), 1.5)


@pytest.mark.parametrize("size", [(48, 48), (60, 37), (17, 90), (1, 1), (130, 96)])
def test_shrinking_is_opencvs_area_resize_exactly(size):
    for image in (PHOTO, PHOTO[..., :1], PHOTO[..., 0]):
        ours = resize(image, *size)
        theirs = cv2.resize(image, size, interpolation=cv2.INTER_AREA).reshape(ours.shape)
        assert ours.dtype == np.uint8 and np.array_equal(ours, theirs)
    floats = PHOTO.astype(np.float32) / 7
    theirs = cv2.resize(floats, size, interpolation=cv2.INTER_AREA)
    assert np.abs(resize(floats, *size) - theirs).max() < 1e-3


@pytest.mark.parametrize(("enlarge", "flag"), [("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC)])
@pytest.mark.parametrize("size", [(140, 112), (300, 250), (262, 195)])  # both sides grow
def test_enlarging_is_opencvs_interpolation_within_one_level(enlarge, flag, size):
    for image in (PHOTO, PHOTO[:48, :48, 0]):
        ours = resize(image, *size, enlarge=enlarge)
        theirs = cv2.resize(image, size, interpolation=flag).reshape(ours.shape)
        diff = np.abs(ours.astype(int) - theirs)
        assert diff.max() <= 1 and diff.mean() < 0.3  # OpenCV's uint8 weights are fixed-point
    floats = PHOTO.astype(np.float32)
    diff = np.abs(resize(floats, *size, enlarge=enlarge) - cv2.resize(floats, size, interpolation=flag))
    assert diff.max() < 1e-3


def test_resize_refuses_an_unknown_interpolation_and_empty_sizes():
    with pytest.raises(FerkitError, match="interpolation must be one of bilinear, bicubic"):
        resize(PHOTO, 10, 10, enlarge="lanczos")
    with pytest.raises(FerkitError, match="at least 1 pixel"):
        resize(PHOTO, 0, 10)


def test_a_batch_is_resized_and_zoomed_exactly_as_its_images_one_by_one():
    batch = np.stack([PHOTO, PHOTO[::-1], PHOTO[:, ::-1]])  # (N, H, W, C)
    for width, height, enlarge in ((64, 48, "bilinear"), (160, 200, "bicubic"), (131, 50, "bilinear")):
        one_by_one = np.stack([resize(im, width, height, enlarge) for im in batch])
        assert np.array_equal(resize(batch, width, height, enlarge, axes=(1, 2)), one_by_one)
    chw = np.ascontiguousarray(batch[:, :64, :64].transpose(0, 3, 1, 2)).astype(np.float32)  # (N, C, S, S)
    one_by_one = np.stack([zoom(im.transpose(1, 2, 0), 1.1).transpose(2, 0, 1) for im in chw])
    assert np.array_equal(zoom(chw, 1.1, axes=(2, 3)), one_by_one)
    assert resize(batch, 131, 97, axes=(1, 2)) is batch  # nothing to do: the input itself


@pytest.mark.parametrize("factor", [0.9, 1.1, 0.5])
def test_zoom_is_opencvs_centred_warp_with_reflected_border(factor):
    image = PHOTO[:64, :64].astype(np.float32)
    c = (64 - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), 0.0, factor)
    theirs = cv2.warpAffine(image, m, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    diff = np.abs(zoom(image, factor) - theirs)
    assert diff.max() < 3 and diff.mean() < 0.5  # OpenCV quantises warp positions to 1/32 px


def test_gray_is_opencvs_within_one_level_and_bgr_its_channel_order():
    diff = np.abs(to_gray(PHOTO).astype(int) - cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert np.array_equal(to_bgr(PHOTO), cv2.cvtColor(PHOTO, cv2.COLOR_RGB2BGR))
    assert np.array_equal(to_bgr(PHOTO[..., :1]), cv2.cvtColor(PHOTO[..., :1], cv2.COLOR_GRAY2BGR))


def test_window_replicates_the_border_as_opencv():
    ours = window(PHOTO, -5, 90, 20)
    crop = PHOTO[90:97, 0:15]
    theirs = cv2.copyMakeBorder(crop, 0, 13, 5, 0, cv2.BORDER_REPLICATE)
    assert np.array_equal(ours, theirs)


def test_nms_keeps_what_opencv_keeps():
    for trial in range(20):
        rng = np.random.default_rng(trial)
        xy = rng.uniform(0, 200, (60, 2))
        wh = rng.uniform(5, 80, (60, 2))
        boxes = np.trunc(np.concatenate([xy, wh], axis=1)).astype(np.float32)
        scores = rng.uniform(0.8, 1.0, 60).astype(np.float32)
        theirs = cv2.dnn.NMSBoxes([tuple(map(float, b)) for b in boxes], scores.tolist(), 0.0, 0.3, 1.0, 5000)
        assert nms(boxes, scores, 0.3, 5000).tolist() == np.asarray(theirs).reshape(-1).tolist()


def test_encode_writes_each_format_and_refuses_others():
    for suffix in (".png", ".jpg", ".bmp", ".webp", ".tiff"):
        back = np.asarray(Image.open(io.BytesIO(encode(PHOTO, suffix))))
        assert back.shape == PHOTO.shape
        if suffix in (".png", ".bmp", ".tiff"):
            assert np.array_equal(back, PHOTO)
    assert np.asarray(Image.open(io.BytesIO(encode(PHOTO[..., :1], ".png")))).shape == PHOTO.shape[:2]
    with pytest.raises(FerkitError, match=r"out\.gif: cannot write \.gif images"):
        encode(PHOTO, ".gif", "out.gif")
