"""`ferkit data ...`: inspect a dataset and convert between the CSV and folder layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ferkit.errors import FerkitError
from ferkit.extras import require_train
from ferkit.fileio import atomic_write_text

app = typer.Typer(help="Inspect datasets and convert between layouts.", no_args_is_help=True)
console = Console()

SizeOpt = Annotated[int | None, typer.Option("--size", help="Stored image side (default: auto).")]
ColorOpt = Annotated[str, typer.Option("--color", help="auto | gray | rgb")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail on the first unreadable file or CSV row.")]


def load_nonempty(path: Path, **options):
    """`load_dataset`, refusing a source in which no image could be read (with the first reasons)."""
    from ferkit.data import load_dataset

    ds = load_dataset(path, progress=True, **options)
    if len(ds) == 0:
        reasons = "; ".join(f"{where}: {why}" for where, why in ds.skipped[:3])
        detail = f" ({len(ds.skipped)} unreadable: {reasons}{'; ...' if len(ds.skipped) > 3 else ''})"
        raise FerkitError(f"{path}: no readable images{detail if ds.skipped else ''}")
    return ds


def print_report(report: dict) -> None:
    """The human-readable summary of an inspect report."""
    table = Table(title=f"{report['source']}  ({report['layout']})")
    splits = list(report["splits"])
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    table.add_column("weight", justify="right")
    for cls in report["classes"]:
        row = [str(report["splits"][s][cls]) for s in splits]
        table.add_row(cls, *row, f"{report['class_weights'][cls]:.3f}")
    table.add_row("total", *[str(sum(report["splits"][s].values())) for s in splits], "", style="bold")
    console.print(table)
    console.print(
        f"images: {report['total']}   stored as {report['stored_image']['size']}px x "
        f"{report['stored_image']['channels']} ch   imbalance ratio {report['imbalance_ratio']:.1f}"
    )
    console.print(_duplicates_line("exact duplicates", report["duplicates"]))
    if "near_duplicates" in report:
        near = report["near_duplicates"]
        console.print(
            _duplicates_line("near duplicates (pHash candidates confirmed on aligned thumbnails)", near)
        )
    if "groups" in report:
        g = report["groups"]
        console.print(
            f"groups ({g['group_by']}): {g['groups']}, {g['across_splits']} across splits (leakage)"
            + "".join(f"\n  {e['group']}: {', '.join(e['splits'])}" for e in g["examples"][:10])
        )
    console.print(f"sizes: {_top(report['image_sizes'])}   modes: {_top(report['image_modes'])}")
    for key in ("corrupt", "ignored"):
        items = report[key]
        if items:
            console.print(f"[yellow]{len(items)} {key} file(s):[/yellow]")
            for item in items[:20]:
                console.print(f"  {item['path']}: {item['reason']}")
            if len(items) > 20:
                console.print(f"  ... {len(items) - 20} more in the JSON report")


def _duplicates_line(title: str, d: dict) -> str:
    return (
        f"{title}: {d['groups']} groups ({d['files']} files), {d['cross_split_groups']} across splits "
        f"(leakage), {d['conflicting_label_groups']} with conflicting labels"
    )


def _top(hist: dict[str, int], n: int = 5) -> str:
    shown = ", ".join(f"{k} ({v})" for k, v in list(hist.items())[:n])
    return shown + (f", +{len(hist) - n} more" if len(hist) > n else "")


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="Folder, FER2013 CSV, or .zip/.tar(.gz) of either.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report here.")] = None,
    size: SizeOpt = None,
    color: ColorOpt = "auto",
    strict: StrictOpt = False,
    near: Annotated[
        bool, typer.Option("--near/--no-near", help="Look for near duplicates (pHash candidates, confirmed).")
    ] = True,
    gallery: Annotated[
        Path | None, typer.Option("--gallery", help="Write a contact-sheet PNG per duplicate group here.")
    ] = None,
    clip: Annotated[float | None, typer.Option(help="Clip class weights at this maximum.")] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by",
            help="Regex over the relative path (e.g. a subject id) or a CSV of "
            "path,group: report groups found in more than one split.",
        ),
    ] = None,
) -> None:
    """Counts per split and class, unreadable files, duplicates, leakage and class weights."""
    require_train("ferkit data inspect", ("scipy",))
    from ferkit.data import analyse, dataset_report
    from ferkit.data.gallery import write_contact_sheets
    from ferkit.data.integrity import NearDuplicateRule
    from ferkit.data.split import group_report

    ds = load_nonempty(path, image_size=size, color=color, strict=strict)
    integrity = analyse(ds, NearDuplicateRule() if near else None)
    report = dataset_report(ds, integrity, clip)
    if group_by:
        report["groups"] = group_report(ds, group_by)
    print_report(report)
    if gallery:
        sheets = write_contact_sheets(ds, integrity.exact, gallery, "exact")
        sheets += write_contact_sheets(ds, integrity.near, gallery, "near")
        console.print(f"{len(sheets)} contact sheet(s) in {gallery}")
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2))
        console.print(f"full report: {json_out}")


@app.command("export-folders")
def export_folders_cmd(
    source: Annotated[Path, typer.Argument(help="FER2013 CSV (or any source).")],
    outdir: Annotated[Path, typer.Argument(help="New folder for <split>/<class>/*.png.")],
    strict: StrictOpt = False,
) -> None:
    """FER2013 CSV → Kaggle-style folders (Training→train, PublicTest→val, PrivateTest→test)."""
    from ferkit.data.export import export_folders

    ds = load_nonempty(source, strict=strict)
    n = export_folders(ds, outdir)
    console.print(f"wrote {n} images to {outdir}; skipped {len(ds.skipped)} bad item(s)")


@app.command("export-csv")
def export_csv_cmd(
    source: Annotated[Path, typer.Argument(help="Folder dataset (or archive).")],
    out: Annotated[Path, typer.Argument(help="CSV file to write (emotion,pixels,Usage).")],
    strict: StrictOpt = False,
) -> None:
    """Folders → the FER2013 CSV format (48x48 grayscale, FER2013 label ids)."""
    from ferkit.data.export import export_csv

    ds = load_nonempty(source, strict=strict)
    n = export_csv(ds, out)
    console.print(f"wrote {n} rows to {out}; skipped {len(ds.skipped)} bad item(s)")
