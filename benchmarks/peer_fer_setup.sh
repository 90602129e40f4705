#!/usr/bin/env bash
# Create a separate venv for the `fer` package (PyPI) and a CPU TensorFlow, so that fer's pins
# never touch ferkit's own .venv. Used by benchmarks/peer_fer.py (which runs fer in this venv as a
# subprocess).
#
#   bash benchmarks/peer_fer_setup.sh            # creates .venv-fer/ beside .venv/
#   FER_VENV=/elsewhere bash benchmarks/peer_fer_setup.sh
#
# Why `fer --no-deps`: fer declares facenet-pytorch (used only by FER(mtcnn=True), which the
# benchmark does not use: the FER2013 crops are already faces), and facenet-pytorch pins an old
# torch (<2.3) whose default Linux wheel drags in several GB of CUDA libraries. Everything that
# `from fer.fer import FER` and FER(mtcnn=False) import is installed explicitly below, and the
# script ends by loading both of fer's bundled models offline to prove it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FER_VENV:-$ROOT/.venv-fer}"
PYTHON="${PYTHON:-python3.11}"
FER_VERSION="${FER_VERSION:-25.10.3}"
TF_SPEC="${TF_SPEC:-tensorflow-cpu==2.21.0}"

if ! command -v "$PYTHON" >/dev/null; then
    echo "peer_fer_setup: $PYTHON not found (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
# fer wants opencv-contrib-python; the headless build is the same minus GUI libraries. <5 because
# OpenCV 5 wheels dropped the Haar cascade that FER() loads in its constructor. setuptools<81: fer
# imports pkg_resources, which setuptools 81 removed.
"$VENV/bin/pip" install --quiet "$TF_SPEC" "opencv-contrib-python-headless<5" requests pillow "setuptools<81"
"$VENV/bin/pip" install --quiet --no-deps "fer==$FER_VERSION"

"$VENV/bin/python" - <<'EOF'
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import fer
import tensorflow as tf
from fer.fer import FER  # fer 25.10.x no longer exports FER from the package root

FER(use_tflite=True)
FER(use_tflite=False)
print(f"peer_fer_setup: ok: fer {fer.__version__}, tensorflow {tf.__version__}, both bundled models load")
EOF
