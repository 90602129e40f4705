"""`ferkit serve`: the REST API through an HTTP client (FastAPI's TestClient), limits, busy answers,
micro-batching, and the CLI's start-up errors. The browser test is in test_serve_browser.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("fastapi", reason="needs the [serve] extra")
from fastapi.testclient import TestClient

from ferkit.cli.main import app as cli
from ferkit.errors import FerkitError
from ferkit.inference import Recognizer
from ferkit.inference.recognizer import ASSETS
from ferkit.serve import Limits, Service, create_app

PHOTO = ASSETS / "astronaut.jpg"
LIMITS = Limits(max_upload_bytes=400_000, max_pixels=1_200_000, max_files=4)


def encode(rgb: np.ndarray, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt)
    return out.getvalue()


def astronaut() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    """The shipped default model (flip TTA), loaded once for the module."""
    return Recognizer.load(None, detector="none")


def make_client(rec: Recognizer, limits: Limits = LIMITS) -> TestClient:
    return TestClient(create_app(Service(rec, limits, "default", "yunet")))


@pytest.fixture(scope="module")
def client(recognizer) -> Iterator[TestClient]:
    with make_client(recognizer) as c:
        yield c


def post(client: TestClient, *files: tuple[str, bytes], **fields: str):
    return client.post("/v1/predict", files=[("file", f) for f in files], data=fields)


def refused(response, status: int, *words: str) -> str:
    """Assert a JSON error answer with that status whose message has every word; returns it."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == status
    assert all(w in body["error"] for w in words), body["error"]
    assert "Traceback" not in response.text
    return body["error"]


def test_predict_returns_the_json_of_ferkit_predict(client, tmp_path):
    res = post(client, ("astronaut.jpg", PHOTO.read_bytes()))
    assert res.status_code == 200 and res.headers["content-type"] == "application/json"
    out = tmp_path / "cli.json"
    cli_run = CliRunner().invoke(cli, ["predict", str(PHOTO), "--json", str(out)])
    assert cli_run.exit_code == 0, cli_run.output
    (api,), (local,) = res.json(), json.loads(out.read_text())
    assert api["source"] == "astronaut.jpg" and local["source"] == str(PHOTO)
    assert api.keys() == local.keys() and (api["width"], api["height"], api["error"]) == (512, 512, None)
    assert len(api["faces"]) == len(local["faces"]) == 1
    face, expected = api["faces"][0], local["faces"][0]
    assert face.keys() == expected.keys()
    assert (face["box"], face["label"]) == (expected["box"], expected["label"])
    assert list(face["probabilities"]) == list(expected["probabilities"])  # every class, model order
    for name, p in expected["probabilities"].items():
        assert face["probabilities"][name] == pytest.approx(p, abs=1e-5)


def test_several_faces_no_face_and_heic_in_one_request(client):
    pair = encode(np.hstack([astronaut(), astronaut()]))
    flat = encode(np.full((300, 400, 3), 128, np.uint8), "PNG")
    heic = io.BytesIO()
    Image.open(PHOTO).save(heic, format="HEIF", quality=90)
    assert heic.getvalue()[4:12] == b"ftypheic"
    res = post(client, ("pair.jpg", pair), ("flat.png", flat), ("phone.heic", heic.getvalue()))
    assert res.status_code == 200
    two, none, phone = res.json()
    assert (two["source"], none["source"], phone["source"]) == ("pair.jpg", "flat.png", "phone.heic")
    assert len(two["faces"]) == 2 and (two["width"], two["height"]) == (1024, 512)
    assert sorted(f["box"]["x"] // 512 for f in two["faces"]) == [0, 1]  # one face in each half
    assert none["faces"] == [] and none["error"] is None
    assert len(phone["faces"]) == 1 and (phone["width"], phone["height"]) == (512, 512)


def test_options_top_k_tta_detector(client):
    photo = ("a.jpg", PHOTO.read_bytes())
    top = post(client, photo, top_k="2").json()[0]["faces"][0]
    assert len(top["probabilities"]) == 2 and top["label"] == next(iter(top["probabilities"]))
    flip = post(client, photo).json()[0]["faces"][0]
    plain = post(client, photo, tta="none").json()[0]["faces"][0]
    assert flip["box"] == plain["box"] and flip["probabilities"] != plain["probabilities"]
    assert post(client, photo, detector="", tta="", top_k="").json()[0]["faces"][0] == flip  # defaults
    whole = post(client, photo, detector="none").json()[0]["faces"]
    assert [f["box"] for f in whole] == [{"x": 0, "y": 0, "w": 512, "h": 512}]


def test_annotate_returns_the_annotated_image(client):
    photo = PHOTO.read_bytes()
    res = post(client, ("a.jpg", photo), annotate="true")
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    drawn = np.asarray(Image.open(io.BytesIO(res.content)).convert("RGB"))
    assert drawn.shape == (512, 512, 3) and np.abs(drawn.astype(int) - astronaut()).max() > 100
    res = post(client, ("a.jpg", photo), annotate="true", image_format="jpeg")
    assert res.headers["content-type"] == "image/jpeg" and res.content[:2] == b"\xff\xd8"
    refused(post(client, ("a.jpg", photo), ("b.jpg", photo), annotate="true"), 422, "exactly one file")


def test_one_bad_file_among_good_ones_is_a_per_file_error(client):
    res = post(client, ("a.jpg", PHOTO.read_bytes()), ("notes.jpg", b"just text, named .jpg"))
    assert res.status_code == 200
    good, bad = res.json()
    assert len(good["faces"]) == 1 and bad["faces"] == [] and "notes.jpg: not an image" in bad["error"]


def multipart(data: bytes, filename: str | None) -> bytes:
    """A multipart body (boundary ``xyz``) with ``data`` in the field 'file', as a file or as text."""
    name = f'; filename="{filename}"' if filename else ""
    head = f'--xyz\r\nContent-Disposition: form-data; name="file"{name}\r\n\r\n'
    return head.encode() + data + b"\r\n--xyz--\r\n"


def test_refusals_are_json_with_a_reason(client):
    photo = PHOTO.read_bytes()
    noise = encode(np.random.default_rng(0).integers(0, 256, (400, 400, 3), np.uint8), "PNG")
    assert len(noise) > LIMITS.max_upload_bytes
    refused(post(client, ("big.png", noise)), 413, "larger than the limit of 400,000 bytes")
    wide = encode(np.zeros((800, 2000, 3), np.uint8), "PNG")
    refused(post(client, ("wide.png", wide)), 413, "wide.png: 2000x800 = 1,600,000 pixels", "1,200,000")
    refused(post(client, ("photo.jpg", b"%PDF-1.4 not an image")), 415, "photo.jpg: not an image")
    refused(post(client, ("cut.jpg", photo[: len(photo) // 2])), 422, "cut.jpg: corrupt or truncated")
    refused(post(client, ("zero.jpg", b"")), 422, "zero.jpg: empty file")
    refused(client.post("/v1/predict"), 415, "multipart/form-data")
    refused(client.post("/v1/predict", json={"file": "a.jpg"}), 415, "multipart/form-data")
    empty = {"content-type": "multipart/form-data; boundary=xyz"}
    refused(client.post("/v1/predict", content=b"", headers=empty), 422, "no image", "'file'")
    refused(client.post("/v1/predict", files={"image": ("a.jpg", photo)}), 422, "unknown field(s) 'image'")
    text = client.post("/v1/predict", content=multipart(b"a.jpg", None), headers=empty)
    refused(text, 422, "must be a file upload")
    refused(post(client, ("a.jpg", photo), detector="dlib"), 422, "'detector'", "dlib")
    refused(post(client, ("a.jpg", photo), top_k="0"), 422, "'top_k'")
    refused(post(client, ("a.jpg", photo), top_k="²"), 422, "'top_k'")
    refused(post(client, ("a.jpg", photo), tta="mirror"), 422, "'tta'")
    refused(post(client, *[("a.jpg", photo)] * 5), 400, "Too many files")
    refused(client.post("/v1/predict", content=b"garbage", headers=empty), 400, "Invalid multipart")
    # a body streamed without Content-Length is cut off at the limit too
    body = multipart(noise, "big.png")
    chunks = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    refused(client.post("/v1/predict", content=chunks, headers=empty), 413, "larger than the limit")
    refused(client.get("/v1/nothing"), 404, "Not Found")
    refused(client.get("/v1/predict"), 405, "Method Not Allowed")


def test_models_health_docs_and_page(client):
    info = client.get("/v1/models").json()
    assert info["class_names"][3] == "happy" and info["preprocessing"]["input_size"] > 0
    assert info["model"] == "default" and info["tta"] == "flip" and info["detector"] == "yunet"
    assert "Intended use" in info["model_card"]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["admitted"] == 0 and health["batching"]["faces"] >= 1
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    docs = client.get("/docs").text
    assert "swagger-ui-bundle.js" in docs and "cdn." not in docs  # works offline
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200


class GatedBackend:
    """Wraps a backend: records batch sizes and holds every call until ``release`` is set."""

    def __init__(self, inner):
        self.inner, self.class_names, self.preprocessing = inner, inner.class_names, inner.preprocessing
        self.sizes: list[int] = []
        self.release = threading.Event()

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        assert self.release.wait(60)
        return self.inner.probabilities(batch)


def wait_for(client: TestClient, key: str, value: int) -> None:
    for _ in range(600):
        if client.get("/health").json()[key] == value:
            return
        time.sleep(0.05)
    raise AssertionError(f"/health never showed {key}={value}")


def in_thread(fn) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


@contextmanager
def gated_client(recognizer: Recognizer, limits: Limits) -> Iterator[tuple[TestClient, GatedBackend]]:
    """A client of a server whose network calls wait for ``backend.release``."""
    backend = GatedBackend(recognizer.backend)
    with make_client(Recognizer(backend, "none", tta="none"), limits) as client:
        yield client, backend


def test_busy_server_answers_503_with_retry_after(recognizer):
    photo = ("a.jpg", PHOTO.read_bytes())
    with gated_client(recognizer, Limits(concurrency=1, queue=1, queue_timeout=3)) as (client, backend):
        first, answer = in_thread(lambda: post(client, photo))
        wait_for(client, "active", 1)  # the first request holds the only slot, blocked in the network
        second, queued = in_thread(lambda: post(client, photo))
        wait_for(client, "admitted", 2)  # the second one waits in the queue
        refused(post(client, photo), 503, "2 requests in progress or queued")  # queue full: at once
        second.join()  # no slot within 3 s
        refused(queued[0], 503, "no processing slot free within 3 s")
        assert int(queued[0].headers["Retry-After"]) >= 1
        backend.release.set()
        first.join()
    assert answer[0].status_code == 200 and len(answer[0].json()[0]["faces"]) == 1


def test_concurrent_requests_share_network_batches(recognizer):
    photo = ("a.jpg", PHOTO.read_bytes())
    with gated_client(recognizer, Limits(concurrency=4, batch_size=8, batch_wait_ms=5)) as (client, backend):
        first, out = in_thread(lambda: post(client, photo))
        for _ in range(600):  # until the first face is inside the (held) network call
            if backend.sizes:
                break
            time.sleep(0.05)
        others = [in_thread(lambda: post(client, photo, detector="none")) for _ in range(3)]
        wait_for(client, "pending_faces", 4)  # three more faces queue while the first batch runs
        backend.release.set()
        for thread, _ in [(first, out), *others]:
            thread.join()
        stats = client.get("/health").json()["batching"]
    assert backend.sizes == [1, 3]  # the three waiting requests' faces went through as one batch
    assert stats["batches"] == 2 and stats["faces"] == 4 and stats["largest"] == 3
    labels = [o[0].json()[0]["faces"][0]["label"] for _, o in [(first, out), *others]]
    assert all(isinstance(label, str) for label in labels)


def test_limits_are_checked():
    with pytest.raises(FerkitError, match="concurrency must be >= 1"):
        Limits(concurrency=0)
    with pytest.raises(FerkitError, match="queue_timeout must be >= 0"):
        Limits(queue_timeout=-1)


def test_cli_serve_start_up_errors(tmp_path, monkeypatch):
    res = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path / "missing.onnx")])
    assert isinstance(res.exception, FerkitError) and "missing.onnx" in str(res.exception)
    res = CliRunner().invoke(cli, ["serve", "--workers", "0"])
    assert "workers must be >= 1" in str(res.exception)
    res = CliRunner().invoke(cli, ["serve", "--concurrency", "0"])
    assert "concurrency must be >= 1" in str(res.exception)
    res = CliRunner().invoke(cli, ["serve", "--detector", "dlib"])
    assert "unknown face detector 'dlib'" in str(res.exception)
    with monkeypatch.context() as m:  # as on an installation without the [serve] extra
        m.setitem(sys.modules, "fastapi", None)
        for name in [n for n in sys.modules if n.startswith("ferkit.serve")]:
            m.delitem(sys.modules, name)
        res = CliRunner().invoke(cli, ["serve"])
    assert "needs the [serve] extra (fastapi is missing): pip install 'ferkit[serve]'" in str(res.exception)
    monkeypatch.setattr("ferkit.inference.recognizer.ASSETS", tmp_path)  # as if no model were shipped
    res = CliRunner().invoke(cli, ["serve", "--model", "fast"])
    assert isinstance(res.exception, FerkitError) and "no 'fast' model is shipped" in str(res.exception)


def test_tiny_images_are_no_faces_not_errors(client):
    for h, w in [(1, 1), (3, 2), (1, 3000)]:
        for detector in ("yunet", "haar", "none"):
            res = post(client, ("tiny.png", encode(np.zeros((h, w, 3), np.uint8), "PNG")), detector=detector)
            assert res.status_code == 200, res.text
            assert len(res.json()[0]["faces"]) == (detector == "none")


def test_serving_an_onnx_model_imports_no_torch():
    code = """
import sys
from fastapi.testclient import TestClient
from ferkit.inference import Recognizer
from ferkit.inference.recognizer import ASSETS
from ferkit.serve import Limits, Service, create_app
app = create_app(Service(Recognizer.load(None, detector="none"), Limits(), "default", "haar"))
with TestClient(app) as client:
    files = {"file": ("a.jpg", (ASSETS / "astronaut.jpg").read_bytes())}
    assert client.post("/v1/predict", files=files).json()[0]["faces"]
print(sorted(m for m in ("torch", "matplotlib", "ferkit.training") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
