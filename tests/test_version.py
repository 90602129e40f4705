"""The version is written once, in pyproject.toml; `ferkit.__version__` reports that one."""

from __future__ import annotations

import re
from pathlib import Path

import ferkit

ROOT = Path(__file__).resolve().parents[1]


def project_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', project, re.M).group(1)


def test_version_matches_pyproject():
    """Fails after a version bump until the package is reinstalled (`pip install -e .`)."""
    assert ferkit.__version__ == project_version()


def test_the_version_is_not_hard_coded_in_the_package():
    source = (ROOT / "src" / "ferkit" / "__init__.py").read_text(encoding="utf-8")
    assert project_version() not in source


def test_changelog_has_an_unreleased_section():
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
