"""Catch asyncio's "exception was never retrieved" reports and pin them on the test that leaked.

A future or task that ends with an exception nobody awaited is not an error at the time: asyncio
reports it only when the object is garbage-collected, by logging ``Future exception was never
retrieved`` (or ``Task exception was never retrieved``) at error level on the ``asyncio`` logger,
from ``__del__``. Such a report means an outcome was lost (a failure no caller saw), so daz's own
suite treats it as a test failure. Objects caught in reference cycles are only freed by the cycle
collector, possibly during a later test, so :meth:`UnretrievedExceptions.collect` forces
``gc.collect()`` at the end of each test to attribute the report to the test that leaked.

Use it in a ``conftest.py``::

    from daz.testing.leaks import fail_on_unretrieved_exceptions  # noqa: F401 (autouse fixture)
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

ASYNCIO_LOGGER = "asyncio"
UNRETRIEVED_MARKERS = ("Future exception was never retrieved", "Task exception was never retrieved")


class UnretrievedExceptions(logging.Handler):
    """A handler on the ``asyncio`` logger that keeps every unretrieved-exception report."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # asyncio's message carries the future's or task's repr, exception included.
        if message.startswith(UNRETRIEVED_MARKERS):
            self.reports.append(message)

    def __enter__(self) -> UnretrievedExceptions:
        logging.getLogger(ASYNCIO_LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(ASYNCIO_LOGGER).removeHandler(self)

    def collect(self) -> list[str]:
        """Free unreachable futures now (their ``__del__`` reports), then return every report."""
        gc.collect()
        return list(self.reports)

    def take(self) -> list[str]:
        """``collect()`` and forget the reports: for a test that leaks on purpose to check them."""
        reports = self.collect()
        self.reports.clear()
        return reports


def unretrieved_in(output: str) -> list[str]:
    """The lines of a process's output (a ``daz`` subprocess's log) that report an exception
    nobody retrieved: the in-process guard cannot see another process's asyncio logger."""
    return [line for line in output.splitlines() if any(m in line for m in UNRETRIEVED_MARKERS)]


def failure_message(reports: list[str]) -> str:
    head = f"{len(reports)} asyncio exception(s) were never retrieved during this test:"
    return "\n".join([head, *(f"- {r}" for r in reports)])


@pytest.fixture(autouse=True)
def fail_on_unretrieved_exceptions() -> Iterator[UnretrievedExceptions]:
    """Fail the test (at teardown) when asyncio reports an exception nobody retrieved.

    Autouse fixtures are set up before the event loop fixture and torn down after it, so the loop
    is closed and its tasks released by the time this collects.
    """
    with UnretrievedExceptions() as detector:
        yield detector
        reports = detector.collect()
    if reports:
        pytest.fail(failure_message(reports), pytrace=False)
