"""What the benchmark scripts print about the machine they measured on."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    """CPU model name and logical CPU count (Linux /proc/cpuinfo, else platform)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    return f"{model}, {os.cpu_count()} logical CPUs"


def load_average() -> str:
    """1/5/15-minute load average: how busy the shared machine was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
