"""`ferkit predict`: expressions of every face in image files, folders and globs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferkit.errors import NothingReadError
from ferkit.inference.recognizer import (
    ImageResult,
    Recognizer,
    csv_rows,
    expand_inputs,
    image_csv_header,
    image_csv_rows,
    json_array,
)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="default | fast (shipped models), a run directory, .pt checkpoint or exported .onnx.",
    ),
]
DetectorOpt = Annotated[
    str,
    typer.Option(
        "--detector", help="yunet (accurate, shipped) | haar (OpenCV's cascade) | none (pre-cropped faces)."
    ),
]
YunetOpt = Annotated[
    Path | None,
    typer.Option(
        "--yunet-model", help="YuNet .onnx file (else $FERKIT_YUNET_MODEL, else the one shipped with ferkit)."
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="torch device for run directories: cpu, cuda, ...")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Faces per network batch.")]
TtaOpt = Annotated[
    str | None,
    typer.Option(
        "--tta",
        help="none | flip (average with the mirrored face: 2x compute) | shift | shift+flip | "
        "scale+flip | shift+scale+flip | tencrop. Default: the model's own (stored with it).",
    ),
]


ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="onnxruntime threads (ONNX models, YuNet; default: one per core)."),
]


def load_recognizer(
    model: str | None,
    detector: str,
    yunet_model: Path | None,
    device: str,
    tta: str | None = None,
    threads: int | None = None,
) -> Recognizer:
    """The recognizer for the CLI options; the detector is built now, so a missing file fails early."""
    rec = Recognizer.load(model, detector, device, yunet_model, threads)
    if tta is not None:
        rec.tta = tta
    rec.detector  # noqa: B018
    return rec


def _line(result: ImageResult) -> list[str]:
    """The table rows of one image: one per face, or one saying why there is none."""
    if result.error:
        return [f"{result.source:<40} {'-':>4}  error: {result.error}"]
    if not result.faces:
        return [f"{result.source:<40} {'-':>4}  no face found"]
    return [
        f"{result.source:<40} {i:>4}  {','.join(map(str, f.box)):<20} {f.label:<10} {f.score:.3f}"
        for i, f in enumerate(result.faces)
    ]


def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders (recursive) or glob patterns.")],
    model: ModelOpt = None,
    detector: DetectorOpt = "yunet",
    yunet_model: YunetOpt = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write all results as JSON.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write one row per face as CSV.")] = None,
    annotate_dir: Annotated[
        Path | None, typer.Option("--annotate", help="Folder for copies with boxes, labels, bars.")
    ] = None,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "cpu",
    tta: TtaOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Detect faces and recognise their expressions; unreadable files are reported, not fatal."""
    from contextlib import ExitStack

    from ferkit.inference.annotate import annotate, annotated_path, write_image

    paths = expand_inputs(inputs)
    rec = load_recognizer(model, detector, yunet_model, device, tta, threads)
    counts = {"images": 0, "faces": 0, "no face": 0, "unreadable": 0}
    used: set[str] = set()
    typer.echo(f"{'image':<40} {'face':>4}  {'box x,y,w,h':<20} {'label':<10} score")
    with ExitStack() as stack:
        add_json = stack.enter_context(json_array(json_out)) if json_out else None
        rows = stack.enter_context(csv_rows(csv_out, image_csv_header(rec.class_names))) if csv_out else None
        for result in rec.predict_files(paths, batch_size, keep_images=annotate_dir is not None):
            typer.echo("\n".join(_line(result)))
            counts["images"] += 1
            counts["faces"] += len(result.faces)
            counts["unreadable" if result.error else "no face"] += not result.faces
            if add_json:
                add_json(result.to_dict())
            if rows:
                rows.writerows(image_csv_rows(result, len(rec.class_names)))
            if annotate_dir and result.image is not None:
                write_image(
                    annotated_path(annotate_dir, result.source, used), annotate(result.image, result.faces)
                )
    typer.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
    if counts["unreadable"] == counts["images"]:
        raise NothingReadError(f"none of the {counts['images']} input file(s) could be read")
