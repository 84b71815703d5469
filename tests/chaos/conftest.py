"""Fixtures of the chaos suite: the fault kit, bounded figures, and the secrets scan (scenario 7).

Every chaos test runs under ``secrets_guard`` (autouse): at teardown it scans every line the test
produced — stdout/stderr at the file-descriptor level (structlog prints there), stdlib log
records, and every subprocess output file registered with ``log_files`` — for the suite's
configured passwords and DSN passwords (``SECRETS``, plus any a test registers). A hit fails the
test with the offending line, masked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daz.testing.pytest_plugin import pg_cluster as pg_cluster
from daz.testing.pytest_plugin import require_cluster as require_cluster

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
    lines_scanned: int = 0

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


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot format must not break the test under scan
            self.lines.append(repr(record.msg))


@pytest.fixture
def log_files() -> LogSources:
    return LogSources()


@pytest.fixture(autouse=True)
def secrets_guard(capfd: pytest.CaptureFixture[str], log_files: LogSources) -> Iterator[LogSources]:
    root = logging.getLogger()
    handler = _Records()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    try:
        yield log_files
    finally:
        root.removeHandler(handler)
    out, err = capfd.readouterr()
    # Give the captured output back to pytest's report, so failures still show it.
    print(out, end="")
    lines = [*out.splitlines(), *err.splitlines(), *handler.lines]
    for path in log_files.files:
        if path.exists():
            lines.extend(path.read_text(errors="replace").splitlines())
    log_files.lines_scanned = len(lines)
    hits = find_secrets(lines, SECRETS | log_files.secrets)
    assert not hits, f"{len(hits)} log line(s) contain a configured secret:\n" + "\n".join(hits[:10])
