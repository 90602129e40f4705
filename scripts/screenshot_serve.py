"""Screenshot of the `ferkit serve` page with the bundled photo, for the docs (small palette PNG).

Needs Debian's Chromium (`apt-get install -y chromium`) and the playwright package (no browser
download). Starts `ferkit serve` on a free loopback port and stops it.

    .venv/bin/python scripts/screenshot_serve.py docs/serve_page.png
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import urllib.request

from PIL import Image
from playwright.sync_api import sync_playwright

from ferkit.inference.recognizer import ASSETS

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main(out: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "ferkit.cli.main", "serve", "--port", str(port)], stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 760, "height": 600})
            page.goto(url)
            page.set_input_files("#file-input", str(ASSETS / "astronaut.jpg"))
            page.wait_for_selector(".card[data-state=done]", timeout=120_000)
            shot = page.screenshot(full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    Image.open(io.BytesIO(shot)).convert("RGB").quantize(128).save(out, optimize=True)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "serve_page.png")
