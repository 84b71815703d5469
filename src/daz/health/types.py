"""The vocabulary of health: statuses, one measured result, and the ``Check`` protocol.

A *component* (``room:lobby``, ``database``, ``process``) owns one or more *measurements*
(``state``, ``liveness``, ``latency``). The component's status is the worst of its measurements;
the overall status is the worst of the components marked critical.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class HealthStatus(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a health status, not a password
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {HealthStatus.PASS: 0, HealthStatus.WARN: 1, HealthStatus.FAIL: 2}


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The most severe status; ``pass`` for an empty input."""
    result = HealthStatus.PASS
    for status in statuses:
        if status.rank > result.rank:
            result = status
    return result


def grade(value: float, warn_at: float, fail_at: float) -> HealthStatus:
    """``fail`` at or above ``fail_at``, ``warn`` at or above ``warn_at``, else ``pass``."""
    if value >= fail_at:
        return HealthStatus.FAIL
    if value >= warn_at:
        return HealthStatus.WARN
    return HealthStatus.PASS


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One measurement of one component at one time.

    ``recovery`` names a recovery action this result asks for (e.g. ``room_reconnect``); the
    monitor decides whether to run it (rate limit) and runs it through the check's ``recover``.
    """

    component: str
    measurement: str
    status: HealthStatus
    observed_value: float | int | str | None
    observed_unit: str | None
    output: str
    time: datetime
    recovery: str | None = None


class Check(Protocol):
    """What the monitor runs. ``name`` is the component (``room:lobby``, ``database``)."""

    @property
    def name(self) -> str: ...

    @property
    def critical(self) -> bool: ...

    async def run(self) -> list[CheckResult]: ...


@runtime_checkable
class Recoverable(Protocol):
    """A check that can act on a failure it reported.

    ``component`` and ``action`` come from the ``CheckResult`` that asked (``recovery``); ``reason``
    is that result's measurement and output, for the log line of whoever carries the action out.
    """

    async def recover(self, component: str, action: str, reason: str) -> None: ...
