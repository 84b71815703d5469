"""Fixtures of the chaos suite: the fault kit, bounded figures, and the secrets scan (scenario 7).

Every chaos test runs under ``secrets_guard`` (autouse): at teardown it scans every line the test
produced — stdout/stderr at the file-descriptor level (structlog prints there), stdlib log
records, and every subprocess output file registered with ``log_files`` — for the suite's
configured passwords and DSN passwords (``SECRETS``, plus any a test registers). A hit fails the
test with the offending line, masked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from chaos_support import SECRETS, LogSources, find_secrets

from daz.testing.pytest_plugin import pg_cluster

__all__ = ["pg_cluster"]  # the fixture, re-exported for the chaos tests


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
    hits = find_secrets(lines, SECRETS | log_files.secrets)
    assert not hits, f"{len(hits)} log line(s) contain a configured secret:\n" + "\n".join(hits[:10])
