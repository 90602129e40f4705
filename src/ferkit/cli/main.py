"""The `ferkit` command: a thin layer over the library (it imports ferkit, never the reverse)."""

from __future__ import annotations

import sys

import typer

from ferkit.cli import data, demo, evaluate, export, predict, train, video
from ferkit.errors import FerkitError

app = typer.Typer(
    help="Facial expression recognition: inspect data, train, evaluate, recognise.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.command("demo")(demo.demo)
app.command("train")(train.train)
app.command("predict")(predict.predict)
app.command("video")(video.video)
app.command("export")(export.export)
app.command("evaluate")(evaluate.evaluate)
app.command("explain")(evaluate.explain)
app.command("compare")(evaluate.compare)


def main() -> None:
    """Entry point: user errors become one readable line and exit code 2, not a traceback."""
    try:
        app()
    except FerkitError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except FileExistsError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
