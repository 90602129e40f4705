#!/usr/bin/env bash
# Render a ferkit report (report.html / compare.html) in headless Chromium and save a PNG of the WHOLE page.
#   apt-get install -y chromium        # Debian package, once
#   scripts/screenshot_report.sh runs/lite0/eval-test-none/report.html report.png
# Chromium's --screenshot captures only the window, so the window is made taller than any report
# (16,000 px) and the empty space below the page is trimmed with Pillow (ferkit's Python: $PYTHON).
set -euo pipefail
html=$(realpath "$1")
out=${2:-${html%.html}.png}
width=${WIDTH:-1100}
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --no-first-run --hide-scrollbars --window-size="$width,16000" --screenshot="$out" "file://$html" 2>/dev/null
"${PYTHON:-python}" - "$out" <<'PY'
import sys

import numpy as np
from PIL import Image

path = sys.argv[1]
with Image.open(path) as im:
    rgb = np.asarray(im.convert("RGB"))
rows = np.flatnonzero((np.abs(rgb.astype(int) - rgb[-1:].astype(int)).sum(axis=(1, 2))) > 0)
bottom = min(len(rgb), (rows[-1] + 1 if len(rows) else 1) + 24)
if bottom >= len(rgb):
    print(f"warning: the page may be taller than {len(rgb)} px and cut off", file=sys.stderr)
Image.fromarray(rgb[:bottom]).save(path)
PY
echo "$out"
