"""Shared helpers of the chaos suite: bounded waiting, percentiles, and the figures file.

Each scenario appends one JSON line of figures to ``$DAZ_CHAOS_FIGURES`` (default
``daz-chaos-figures.jsonl`` in the temp dir); docs/reliability.md quotes the last run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIGURES_ENV = "DAZ_CHAOS_FIGURES"

# Passwords every chaos scenario configures somewhere (rooms, DSNs); none may ever be logged.
ROOM_PASSWORD = "chaos-room-pw-Zq81!x"
CHANNEL_PASSWORD = "chaos-chan-pw-Lr27?k"
DB_PASSWORD = "chaos-db-pw-Hm55-v"
SECRETS: frozenset[str] = frozenset({ROOM_PASSWORD, CHANNEL_PASSWORD, DB_PASSWORD})



def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


@dataclass
class LogSources:
    """What a test registers for the secrets scan."""

    files: list[Path] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)

    def add_file(self, path: Path) -> Path:
        self.files.append(path)
        return path

    def add_secret(self, value: str) -> None:
        self.secrets.add(value)


def find_secrets(lines: list[str], secrets: set[str] | frozenset[str]) -> list[str]:
    """Lines containing any secret, with the secret masked (so the failure report leaks nothing)."""
    hits = []
    for line in lines:
        found = [s for s in secrets if s and s in line]
        if found:
            masked = line
            for s in found:
                masked = masked.replace(s, f"<SECRET len={len(s)}>")
            hits.append(masked[:300])
    return hits


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
    path = Path(os.environ.get(FIGURES_ENV, Path(tempfile.gettempdir()) / "daz-chaos-figures.jsonl"))
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text + "\n")
