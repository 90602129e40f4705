"""`ferkit export`: a run directory → a self-describing ONNX file, checked against torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run directory (its best checkpoint) or .pt file; several → one ensemble model."),
    ],
    onnx_out: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Static int8 (QDQ, per-channel), calibrated on --data's training split; checked on --split.",
        ),
    ] = False,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Store the weights as fp16 (half the file; computed in fp32).")
    ] = False,
    data: Annotated[
        str | None, typer.Option("--data", help="Dataset to measure accuracy on (folder, CSV, archive).")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Split of --data, e.g. test.")] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (>= 18).")] = 18,
) -> None:
    """Export with a dynamic batch axis; print the max probability difference vs torch (and accuracy).

    Several runs become one ensemble graph (the mean of their probabilities; they must share
    classes and preprocessing).
    """
    from ferkit.errors import FerkitError
    from ferkit.extras import require_train

    require_train("ferkit export")
    from ferkit.export import export_onnx

    if int8 and fp16:
        raise FerkitError("choose one of --int8 and --fp16")
    weights = "int8" if int8 else "fp16" if fp16 else "fp32"
    report = export_onnx(runs, onnx_out, weights=weights, opset=opset, data=data, split=split)
    typer.echo("\n".join(report.lines()))
