"""`ferkit serve`: the REST API and web page on uvicorn (needs ``pip install 'ferkit[serve]'``)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from ferkit.cli.predict import DetectorOpt, ModelOpt, ThreadsOpt, YunetOpt
from ferkit.errors import FerkitError


def serve(
    model: ModelOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind. 0.0.0.0 exposes the server to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Threads that decode and detect.")] = 4,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Requests processed at once (their faces share batches).")
    ] = 16,
    detector: DetectorOpt = "yunet",
    yunet_model: YunetOpt = None,
    threads: ThreadsOpt = None,
    tta: Annotated[
        str | None,
        typer.Option("--tta", help="Default TTA: none | flip | shift+flip ... (the model's own)."),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest request body.")] = 20.0,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", help="Largest image (width x height), read before decoding.")
    ] = 40_000_000,
    max_files: Annotated[int, typer.Option("--max-files", help="Most images in one request.")] = 16,
    queue: Annotated[
        int,
        typer.Option("--queue", help="Requests that may wait for a processing slot (beyond: 503 at once)."),
    ] = 32,
    queue_timeout: Annotated[
        float, typer.Option("--queue-timeout", help="Seconds a request may wait before a 503.")
    ] = 10.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Most faces in one network batch.")] = 32,
    batch_wait_ms: Annotated[
        float, typer.Option("--batch-wait-ms", help="How long a batch waits for other requests' faces.")
    ] = 5.0,
) -> None:
    """Serve the model over HTTP: POST /v1/predict, GET /v1/models, /health, /docs, and a web page at /."""
    try:
        import uvicorn

        from ferkit.serve import Limits, Service, create_app
    except ImportError as exc:
        raise FerkitError(
            f"ferkit serve needs the [serve] extra ({exc.name} is missing): pip install 'ferkit[serve]'"
        ) from None
    from ferkit.inference import Recognizer

    limits = Limits(
        max_upload_bytes=round(max_upload_mb * 2**20),
        max_pixels=max_pixels,
        max_files=max_files,
        workers=workers,
        concurrency=concurrency,
        queue=queue,
        queue_timeout=queue_timeout,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
    )
    # detector "none": the Service runs its own detectors, one per worker thread
    rec = Recognizer.load(model, detector="none", yunet_model=yunet_model, threads=threads)
    if tta is not None:
        rec.tta = tta
    app = create_app(Service(rec, limits, model or "default", detector, yunet_model))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"ferkit serve: http://{shown}:{port}/ (API docs at /docs); Ctrl+C stops")
    if not _is_loopback(host):
        typer.secho(
            f"warning: bound to {host}: anyone who can reach this machine can use the server "
            "(no authentication, no TLS; see 'Exposing it' in docs/serve.md)",
            fg="yellow",
            err=True,
        )
    # connections beyond the queue are refused with 503 by uvicorn itself before reaching the app
    uvicorn.run(app, host=host, port=port, log_level="info", limit_concurrency=2 * (concurrency + queue) + 16)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
