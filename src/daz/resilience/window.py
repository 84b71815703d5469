"""Sliding windows of call outcomes for circuit breakers: the last N calls, or the last T seconds.

Both keep running totals so reading the rates is O(1); the time window groups calls into ten
buckets per window so memory stays bounded at any call rate. Time comes in as an argument (a clock
reading) so the windows are deterministic under ``FakeClock``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

TIME_WINDOW_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What a window holds now: calls, how many failed, how many were slow."""

    calls: int = 0
    failures: int = 0
    slow: int = 0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_rate(self) -> float:
        return self.slow / self.calls if self.calls else 0.0


class SlidingWindow(Protocol):
    def record(self, *, failed: bool, slow: bool, now: float) -> None: ...

    def stats(self, now: float) -> WindowStats: ...

    def reset(self) -> None: ...


class CountWindow:
    """The last ``size`` calls, whenever they happened."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a count window holds at least one call")
        self.size = size
        self._calls: deque[tuple[bool, bool]] = deque()
        self._failures = 0
        self._slow = 0

    def record(self, *, failed: bool, slow: bool, now: float) -> None:
        if len(self._calls) == self.size:
            old_failed, old_slow = self._calls.popleft()
            self._failures -= old_failed
            self._slow -= old_slow
        self._calls.append((failed, slow))
        self._failures += failed
        self._slow += slow

    def stats(self, now: float) -> WindowStats:
        return WindowStats(len(self._calls), self._failures, self._slow)

    def reset(self) -> None:
        self._calls.clear()
        self._failures = 0
        self._slow = 0


class TimeWindow:
    """Calls of the last ``seconds``, in ``TIME_WINDOW_BUCKETS`` buckets (the oldest expires whole)."""

    def __init__(self, seconds: float, buckets: int = TIME_WINDOW_BUCKETS) -> None:
        if seconds <= 0 or buckets < 1:
            raise ValueError("a time window needs a positive length and at least one bucket")
        self.seconds = seconds
        self.buckets = buckets
        self._width = seconds / buckets
        # (bucket index, calls, failures, slow), oldest first
        self._slots: deque[list[int]] = deque()
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def _expire(self, now: float) -> int:
        current = math.floor(now / self._width)
        while self._slots and self._slots[0][0] <= current - self.buckets:
            _, calls, failures, slow = self._slots.popleft()
            self._calls -= calls
            self._failures -= failures
            self._slow -= slow
        return current

    def record(self, *, failed: bool, slow: bool, now: float) -> None:
        current = self._expire(now)
        if not self._slots or self._slots[-1][0] < current:
            self._slots.append([current, 0, 0, 0])
        slot = self._slots[-1]
        slot[1] += 1
        slot[2] += failed
        slot[3] += slow
        self._calls += 1
        self._failures += failed
        self._slow += slow

    def stats(self, now: float) -> WindowStats:
        self._expire(now)
        return WindowStats(self._calls, self._failures, self._slow)

    def reset(self) -> None:
        self._slots.clear()
        self._calls = 0
        self._failures = 0
        self._slow = 0


def make_window(window_type: str, *, size: int, seconds: float) -> SlidingWindow:
    """The window a ``BreakerConfig`` asks for (``"count"`` or ``"time"``)."""
    if window_type == "count":
        return CountWindow(size)
    if window_type == "time":
        return TimeWindow(seconds)
    raise ValueError(f"unknown window type {window_type!r}; expected 'count' or 'time'")
