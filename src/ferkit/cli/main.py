"""The `ferkit` command: a thin layer over the library (it imports ferkit, never the reverse).

Exit codes: 0 success (a batch command read at least one input; per-file errors are in its output);
1 nothing could be read (every input image unreadable, or no video frame; predict still writes
  its outputs, which say why);
2 a user error (bad option, path, file, model or config value): one line on stderr, no traceback;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys

import typer

from ferkit.cli import adapt, batch, data, demo, evaluate, export, predict, serve, train, video
from ferkit.errors import FerkitError, NothingReadError

EXIT_NOTHING_READ, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130

app = typer.Typer(
    help="Facial expression recognition: inspect data, train, evaluate, recognise.",
    epilog="Exit codes: 0 success; 1 no input could be read; 2 bad option, path, file, model or config "
    "(one line on stderr); 130 interrupted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.command("demo")(demo.demo)
app.command("train")(train.train)
app.command("adapt")(adapt.adapt)
app.command("predict")(predict.predict)
app.command("video")(video.video)
app.command("batch")(batch.batch)
app.command("export")(export.export)
app.command("evaluate")(evaluate.evaluate)
app.command("explain")(evaluate.explain)
app.command("compare")(evaluate.compare)
app.command("serve")(serve.serve)


def main() -> None:
    """Entry point: user errors become one readable line and a documented exit code, not a traceback."""
    try:
        app()
    except NothingReadError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_NOTHING_READ)
    except (FerkitError, FileExistsError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg="red", err=True)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
