"""One self-contained HTML page (images embedded) and a short Markdown summary."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ferkit.fileio import atomic_write_text

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} pre{background:#f7f7f7;padding:.8em;overflow:auto}
.muted{color:#666}
"""


def table_html(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image_html(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def pre_html(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def write_html(path: Path, title: str, subtitle: str, sections: list[tuple[str, str]]) -> Path:
    """Write the page atomically; ``sections`` are (heading, inner HTML)."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='muted'>{html.escape(subtitle)}</p>{body}</body></html>"
    )
    return atomic_write_text(path, page)


def metrics_tables(m: dict) -> str:
    """Overall and per-class tables of a metrics.json dict."""
    overall = table_html(
        ["metric", "precision", "recall", "F1"],
        [[avg, m[avg]["precision"], m[avg]["recall"], m[avg]["f1"]] for avg in ("macro", "weighted")],
    )
    per_class = table_html(
        ["class", "precision", "recall", "F1", "support"],
        [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in m["per_class"].items()],
    )
    columns = ["accuracy", "macro-F1", "ECE", "n", "split", "TTA"]
    headline = [m["accuracy"], m["macro"]["f1"], m["ece"], m["n"], m["split"], m["tta"]]
    if "no_face" in m:  # whole photos through a detector: misses are part of the headline
        columns, headline = [*columns, "no face (misses)"], [*headline, m["no_face"]]
    head = table_html(columns, [headline])
    return head + overall + per_class


def markdown_summary(title: str, m: dict) -> str:
    lines = [
        f"# {title}",
        "",
        f"Split `{m['split']}` (n = {m['n']}), TTA `{m['tta']}`"
        + (f", {m['no_face']} images without a face (counted as misses)." if "no_face" in m else "."),
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy | {m['accuracy']:.4f} |",
        f"| macro-F1 | {m['macro']['f1']:.4f} |",
        f"| weighted-F1 | {m['weighted']['f1']:.4f} |",
        f"| expected calibration error | {m['ece']:.4f} |",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |"
        for c, v in m["per_class"].items()
    ]
    return "\n".join(lines) + "\n"
