"""Shared helpers of the chaos suite: bounded waiting, percentiles, and the figures file.

Each scenario appends one JSON line of figures to ``$DAZ_CHAOS_FIGURES`` (default
``chaos-figures.jsonl`` in the working directory); docs/reliability.md quotes the last run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIGURES_ENV = "DAZ_CHAOS_FIGURES"


async def until(predicate: Callable[[], bool], *, timeout: float, what: str, poll: float = 0.02) -> float:
    """Poll ``predicate`` (bounded by ``timeout``); the seconds it took. Fails naming ``what``."""
    started = time.monotonic()
    deadline = started + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(poll)
    return time.monotonic() - started


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100); NaN for an empty list."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def record_figures(scenario: str, figures: dict[str, Any]) -> None:
    """Append the scenario's figures to the figures file and print them (visible with ``-s``)."""
    line = {"scenario": scenario, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    text = json.dumps(line, sort_keys=True, default=str)
    print(f"FIGURES {text}")
    path = Path(os.environ.get(FIGURES_ENV, "chaos-figures.jsonl"))
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text + "\n")
