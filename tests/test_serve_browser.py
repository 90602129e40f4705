"""The web page of `ferkit serve` in a real browser: Debian's Chromium driven by Playwright.

Starts `ferkit serve` as a subprocess on a free loopback port. Runs in the default test run whenever
/usr/bin/chromium and the playwright package are present (.ci/run installs Chromium); skipped
otherwise. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferkit.inference.recognizer import ASSETS

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (/usr/bin/chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",  # a synthetic camera
]  # fmt: skip
PHOTO = ASSETS / "astronaut.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """`ferkit serve` with the shipped model and face detector on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    cmd = [sys.executable, "-m", "ferkit.cli.main", "serve", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"ferkit serve exited with {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as res:
                    if json.load(res)["status"] == "ok":
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"ferkit serve did not answer within 60 s: {log.read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
        page.goto(server)
        yield page
        browser.close()
    assert not errors, errors  # no uncaught JavaScript error, nothing blocked by the page's CSP


def expected_label(server: str) -> str:
    """The label the API gives the bundled photo (the page must show the same)."""
    boundary = "ferkitboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'.encode()
        + PHOTO.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{server}/v1/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(req, timeout=60) as res:
        (result,) = json.load(res)
    assert len(result["faces"]) == 1
    return result["faces"][0]["label"]


def test_page_shows_the_label_of_an_uploaded_photo(server, page, tmp_path):
    page.locator("#model-info", has_text="happy").wait_for(timeout=60_000)  # classes from /v1/models
    page.set_input_files("#file-input", str(PHOTO))
    card = page.wait_for_selector(".card[data-state=done]", timeout=60_000)
    assert card.query_selector(".name").inner_text() == "astronaut.jpg"
    assert card.query_selector(".status").inner_text().startswith("1 face")
    assert card.query_selector(".face-label").inner_text() == expected_label(server)
    assert len(card.query_selector_all(".bars .bar")) == 7  # one probability bar per class
    canvas = card.query_selector("canvas.view")
    assert canvas.get_attribute("width") == "512" and canvas.is_visible()
    page.screenshot(path=tmp_path / "page.png", full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_a_heic_photo_is_shown_through_the_servers_annotated_copy(page, tmp_path):
    from PIL import Image

    heic = tmp_path / "phone.heic"
    Image.open(PHOTO).save(heic, format="HEIF")  # Chromium cannot decode HEIC itself
    page.set_input_files("#file-input", str(heic))
    card = page.wait_for_selector(".card[data-state=done]:has(.name:text-is('phone.heic'))", timeout=60_000)
    assert card.query_selector(".status").inner_text().startswith("1 face")
    shown = card.query_selector("img.view-server")
    assert shown.is_visible() and not card.query_selector("canvas.view").is_visible()
    assert shown.evaluate("img => img.complete && img.naturalWidth") == 512


def test_page_reports_a_refused_file(page, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    page.set_input_files("#file-input", str(notes))
    card = page.wait_for_selector(".card[data-state=error]", timeout=60_000)
    assert "notes.jpg: not an image" in card.query_selector(".status").inner_text()


def test_webcam_mode_sends_frames_and_shows_the_result(page, tmp_path):
    page.click("#tab-webcam")
    page.fill("#cam-fps", "5")
    page.click("#cam-start")
    status = page.locator("#cam-status")
    for _ in range(600):  # Chromium's fake camera: a moving test pattern, no face
        if int(status.get_attribute("data-frames") or 0) >= 3:
            break
        time.sleep(0.1)
    assert int(status.get_attribute("data-frames") or 0) >= 3, status.inner_text()
    assert "no face found" in status.inner_text()
    page.screenshot(path=tmp_path / "webcam.png")
    page.click("#cam-stop")
    assert status.inner_text() == "camera off"
