"""Interleaved timing rounds: every contender runs once per round (A, B, C, A, B, C, ...), in an order
that rotates each round, so a shared machine's drift in load hits all of them alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from machine_info import load_average  # benchmarks/ is on sys.path when run as a script


def interleaved(
    contenders: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    verbose: bool = True,
    before: Callable[[str], object] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, over ``rounds`` interleaved rounds after ``warmup`` untimed
    calls each; ``before(name)``, if given, runs untimed before every timed call (e.g. to build a
    fresh session); prints the load average after every round when ``verbose``."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    names = list(contenders)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if before:
                before(name)
            start = time.perf_counter()
            contenders[name]()
            seconds[name].append(time.perf_counter() - start)
        if verbose:
            print(f"  round {r + 1}/{rounds} done; load average {load_average()}", flush=True)
    return seconds


def per_second(items: int, seconds: list[float]) -> float:
    """Items per second of the median call."""
    return items / statistics.median(seconds)
