"""Build the training source of the photo-robust default model: FER2013 + face crops of real photos.

The photo dataset (../shared/data/muxspace-faces.tar.gz, a single class-folder pool) is divided
into two fixed halves by `ferkit.data.wild_halves` (stratified, seeded): the "val" half is the
wild validation set and never trained on; the "train" half is run through the same face detector
and square crop as `ferkit predict`, converted to gray (FER2013 is gray), stored at
``--size`` px (JPEG q95) and added to FER2013's training split. The output is one Kaggle-style
folder tree, archived:

    OUT.tar.gz  train/<class>/*  (FER2013 Training + photo crops)   test/<class>/*  (PublicTest)

Usage: python scripts/build_wild_training_set.py --fer FER.tar.gz --photos MUX.tar.gz --out OUT.tar.gz
"""

from __future__ import annotations

import argparse
import io
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np

from ferkit.data import load_dataset, wild_halves
from ferkit.data.sources import Source
from ferkit.evaluation.evaluate import full_resolution_images
from ferkit.inference.detect import make_detector


def photo_crops(photos: str, margin: float, size: int, yunet: str | None) -> list[tuple[str, bytes]]:
    """(archive name, JPEG bytes) of the largest face in every photo of the training half."""
    train = wild_halves(load_dataset(photos)).split("train")
    detector = make_detector("yunet", model_path=yunet, margin=margin)
    out, missed = [], 0
    for index, images in full_resolution_images(train):
        for i, image in zip(index, images, strict=True):
            dets = detector.detect(image)
            if not dets:
                missed += 1
                continue
            crop = detector.crops(image, dets[:1])[0]
            gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.shape[2] == 3 else crop[..., 0]
            small = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
            _, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 95])
            name = f"train/{train.class_names[train.labels[i]]}/photo_{Path(train.sources[i]).stem}.jpg"
            out.append((name, jpg.tobytes()))
    print(f"{photos}: {len(out)} training-half photos cropped, {missed} without a face (left out)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fer", required=True, help="FER2013 Kaggle-style archive (train/ and test/)")
    ap.add_argument("--photos", required=True, help="class-folder pool of photos")
    ap.add_argument("--out", required=True, type=Path, help="output .tar.gz")
    ap.add_argument("--margin", type=float, default=0.2, help="detector crop margin (as predict)")
    ap.add_argument("--size", type=int, default=112, help="side of the stored crops (the network input)")
    ap.add_argument("--yunet-model", default=None)
    args = ap.parse_args()
    t0 = time.time()
    crops = photo_crops(args.photos, args.margin, args.size, args.yunet_model)
    fer = Source(args.fer)
    files = [f for f in fer.files() if f.split("/")[-3:-2] in (["train"], ["test"])]
    tmp = args.out.with_name(args.out.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in [*((f.split("/", f.count("/") - 2)[-1], d) for f, d in fer.read(files)), *crops]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(args.out)
    classes, counts = np.unique([n.split("/")[1] for n, _ in crops], return_counts=True)
    per_class = ", ".join(f"{c} {n}" for c, n in zip(classes.tolist(), counts.tolist(), strict=True))
    print(
        f"wrote {args.out}: {len(files)} FER2013 files + photo crops ({per_class}) in {time.time() - t0:.0f}s"
    )


if __name__ == "__main__":
    main()
