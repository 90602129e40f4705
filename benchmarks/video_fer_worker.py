"""Worker for video_speed.py: runs in the fer venv (benchmarks/peer_fer_setup.sh), never ferkit's.

fer's own per-frame loop on a video file, as its README shows it for videos: read a frame with
OpenCV, ``FER().detect_emotions(frame)`` (Haar cascade face detection + its default TFLite
classifier). Prints one JSON object on stdout: frames, faces found, seconds of the timed loop.

    .venv-fer/bin/python benchmarks/video_fer_worker.py --video V.mp4 [--frames N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import cv2  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video", required=True)
    parser.add_argument("--frames", type=int, default=0, help="stop after N frames (0: all)")
    args = parser.parse_args()
    from fer.fer import FER

    detector = FER()
    cap = cv2.VideoCapture(args.video)
    ok, frame = cap.read()
    if not ok:
        raise SystemExit(f"{args.video}: cannot read")
    detector.detect_emotions(frame)  # warm-up (TFLite interpreter, cascade)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    frames = faces = 0
    start = time.perf_counter()
    while (not args.frames or frames < args.frames) and (got := cap.read())[0]:
        faces += len(detector.detect_emotions(got[1]))
        frames += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"frames": frames, "faces": faces, "seconds": seconds}))


if __name__ == "__main__":
    main()
