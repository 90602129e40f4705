"""MkDocs hook: render the `ferkit` command's help into docs/cli.md from the Typer app itself.

Every `<!-- cli-reference -->` line is replaced by one section per command and subcommand, in the
order the app registers them, with the help text Click prints for `ferkit CMD --help` (plain text, no
colours). Nothing is hand-copied, so the page cannot drift from the options the code accepts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKER = "<!-- cli-reference -->"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))  # this checkout's ferkit


def _commands(group, ctx, path: list[str]):
    """(name path, context) for the group and every command below it, depth first."""
    yield path, ctx
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = type(ctx)(cmd, info_name=name, parent=ctx, terminal_width=100, max_content_width=100)
        if hasattr(cmd, "list_commands"):  # a group (Typer may vendor its own Click)
            yield from _commands(cmd, sub, [*path, name])
        else:
            yield [*path, name], sub


def render() -> str:
    """Markdown: a heading and the `--help` text of every command."""
    os.environ["TERMINAL_WIDTH"] = "100"  # Typer's rich help: a fixed width, whatever the terminal
    os.environ["NO_COLOR"] = "1"
    import typer.core
    import typer.main

    from ferkit.cli.main import app

    typer.core.HAS_RICH = False  # Click's plain help formatter: stable text for a code block
    root = typer.main.get_command(app)
    top = root.context_class(root, info_name="ferkit", terminal_width=100, max_content_width=100)
    parts = []
    for path, ctx in _commands(root, top, ["ferkit"]):
        name = " ".join(path)
        parts.append(f"## `{name}`\n\n```text\n{ctx.get_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
