#!/usr/bin/env bash
# Render a ferkit report (report.html / compare.html) in headless Chromium and save a PNG screenshot.
#   apt-get install -y chromium        # Debian package, once
#   scripts/screenshot_report.sh runs/lite0/eval-test-none/report.html report.png
set -euo pipefail
html=$(realpath "$1")
out=${2:-${html%.html}.png}
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --no-first-run --window-size=1100,2600 --screenshot="$out" "file://$html" 2>/dev/null
echo "$out"
