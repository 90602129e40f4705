"""README.md and every docs/**/*.md page: their code blocks run as written, or say why they cannot.

The convention (every helper adding docs follows it):
- Every fenced block has a language: ```python, ```bash, ```sh, ```console, or one that is not run
  (```text, ```json, ```yaml, ```csv ...). A fence without a language fails this test.
- Every ```python / ```bash / ```sh / ```console block is executed here, unless the line right
  before it (blank lines aside) is `<!-- skip: REASON -->` with a non-empty reason (it needs data,
  a GPU, a webcam, a trained run, a network, minutes...). Keep executed blocks cheap (seconds).
- An executed block runs in a fresh empty folder that holds `photo.jpg` (the bundled demo photo):
  python blocks with this interpreter (`python -c`), bash/sh blocks with `bash -euo pipefail`
  (this interpreter's bin folder first on PATH, so `ferkit` and `python` are the checkout's),
  console blocks as the bash commands on their `$ ` lines. A block passes when it exits with 0.
- README.md stays ≤ 250 lines, and its links to local files exist (mkdocs --strict checks the
  links between docs pages). Every page under docs/ is in mkdocs.yml's nav and every nav entry exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
NOT_PAGES = ("hooks", "runs")  # mkdocs.yml's exclude_docs: hook code, raw run records
PAGES = [README, *sorted(p for p in DOCS.rglob("*.md") if p.relative_to(DOCS).parts[0] not in NOT_PAGES)]
RUN = {"python", "bash", "sh", "console"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
SKIP = re.compile(r"^<!--\s*skip:\s*(\S.*?)\s*-->$")
PHOTO = ROOT / "src" / "ferkit" / "assets" / "astronaut.jpg"


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the reason given, if the block is marked as not runnable

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page, with the skip reason written above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence)), len(lines))
        before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        skip = SKIP.match(before)
        code = "\n".join(ln[len(indent) :] for ln in lines[i + 1 : end]) + "\n"
        found.append(Block(page, i + 1, lang.lower(), code, skip.group(1) if skip else None))
        i = end + 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL if b.lang in RUN and b.skip is None]


def test_the_readme_has_runnable_examples():
    assert {b.lang for b in RUNNABLE if b.page == README} >= {"python", "bash"}


@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_every_fenced_block_names_its_language(block):
    assert block.lang, f"{block.id}: a fenced block without a language (use ```text for plain output)"


def command(block: Block) -> list[str]:
    if block.lang == "python":
        return [sys.executable, "-c", block.code]
    code = block.code
    if block.lang == "console":
        code = "\n".join(ln[2:] for ln in code.splitlines() if ln.startswith("$ "))
    return ["bash", "-euo", "pipefail", "-c", code]


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_code_block_runs(block, tmp_path):
    shutil.copy(PHOTO, tmp_path / "photo.jpg")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    res = subprocess.run(command(block), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{block.id} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"


def test_the_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 250, f"README.md has {n} lines (at most 250: move details into docs/)"


def test_readme_links_to_local_files_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    missing = [t for t in local if t and not (ROOT / t).exists()]
    assert local and not missing, f"README.md links to missing files: {missing}"


def nav_files(entries) -> list[str]:
    out = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        out += nav_files(value) if isinstance(value, list) else [value]
    return out


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = nav_files(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    pages = {str(p.relative_to(DOCS)) for p in PAGES if p != README}
    assert not sorted(set(nav) - pages), "nav entries without a page"
    assert not sorted(pages - set(nav)), "docs pages missing from mkdocs.yml's nav"
