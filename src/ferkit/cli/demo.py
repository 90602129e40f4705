"""`ferkit demo`: the main job on built-in defaults, fully offline."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from ferkit.cli.data import print_report
from ferkit.data import analyse, dataset_report, load_dataset
from ferkit.data.synthetic import make_synthetic_folders

console = Console()


def demo() -> None:
    """Build the built-in synthetic face sample and inspect it like a real dataset."""
    with tempfile.TemporaryDirectory(prefix="ferkit-demo-") as tmp:
        root = make_synthetic_folders(Path(tmp) / "faces", per_class=40, test_per_class=10)
        console.print(f"[bold]ferkit demo[/bold]: synthetic face sample in {root}")
        ds = load_dataset(root, cache=False)
        print_report(dataset_report(ds, analyse(ds)))
