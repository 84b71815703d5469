"""The process-wide retry budget: retries may add at most ``ratio`` of base traffic plus a floor.

Per dependency, over a sliding window of ``window_seconds`` (ten buckets):

    retries in window  <=  ratio * first attempts in window  +  min_per_second * window_seconds

First attempts are reported with ``record_base``; every retry asks ``try_acquire`` first. A refusal
means "not now": callers defer (the retry queue reschedules the item without charging an attempt),
never drop. This is what keeps an outage from becoming a retry storm: with the dependency down,
retries stay a bounded fraction of real traffic however many items are waiting.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import structlog

from daz.clock import Clock
from daz.config import RetryBudgetConfig
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.retry")

BUDGET_BUCKETS = 10
# Refused retries queue up in a virtual line (see ``retry_after``); no one is sent further than this.
MAX_DEFER_SECONDS = 300.0


@dataclass(slots=True)
class _Account:
    # (bucket index, base, retries), oldest first
    slots: deque[list[int]] = field(default_factory=deque)
    base: int = 0
    retries: int = 0
    refused: int = 0
    granted: int = 0
    line_end: float = 0.0  # monotonic time by which every refused retry so far has its turn


class RetryBudget:
    """Token accounting per dependency (a breaker name or an operation type: bounded, from config)."""

    def __init__(self, config: RetryBudgetConfig, clock: Clock, metrics: DazMetrics | None = None) -> None:
        self.config = config
        self._clock = clock
        self._metrics = metrics
        self._width = config.window_seconds / BUDGET_BUCKETS
        self._accounts: dict[str, _Account] = {}

    # public ----------------------------------------------------------------------------------
    def record_base(self, dependency: str, count: int = 1) -> None:
        """Count ``count`` first attempts (base traffic) towards ``dependency``'s allowance."""
        account, slot = self._slot(dependency)
        slot[1] += count
        account.base += count

    def try_acquire(self, dependency: str) -> bool:
        """Take one retry token; False (counted in ``daz_retry_budget_exhausted_total``) when empty."""
        if not self.config.enabled:
            return True
        account, slot = self._slot(dependency)
        if account.retries + 1 > self.allowance(dependency):
            account.refused += 1
            now = self._clock.monotonic()
            account.line_end = min(max(account.line_end, now) + 1.0 / self._refill_rate(dependency),
                                   now + MAX_DEFER_SECONDS)
            if self._metrics is not None:
                self._metrics.retry_budget_exhausted.labels(dependency=dependency).inc()
            if account.refused == 1 or account.refused % 1000 == 0:
                log.warning("retry.budget_exhausted", dependency=dependency, retries=account.retries,
                            base=account.base, refused=account.refused)
            return False
        slot[2] += 1
        account.retries += 1
        account.granted += 1
        return True

    def allowance(self, dependency: str) -> float:
        """How many retries the current window allows in total."""
        account = self._account(dependency)
        return self.config.ratio * account.base + self.config.min_per_second * self.config.window_seconds

    def retry_after(self, dependency: str) -> float:
        """Seconds the latest refused retry should wait for its turn.

        Each refusal takes the next place in a line served at the refill rate (allowance per window
        over the window), so a backlog of N refused items spreads over N / rate seconds instead of
        coming back together every bucket and being refused again. Never before the oldest bucket
        holding retries expires (no token frees earlier), never more than ``MAX_DEFER_SECONDS``.
        """
        account = self._account(dependency)
        now = self._clock.monotonic()
        current = math.floor(now / self._width)
        first_token = self.config.window_seconds
        for index, _, retries in account.slots:
            if retries:
                first_token = max((index + BUDGET_BUCKETS - current) * self._width, self._width)
                break
        return min(max(first_token, account.line_end - now), MAX_DEFER_SECONDS)

    def _refill_rate(self, dependency: str) -> float:
        rate = self.allowance(dependency) / self.config.window_seconds
        return rate if rate > 0 else 1.0 / self.config.window_seconds

    def snapshot(self) -> list[dict[str, float | int | str]]:
        """Per dependency: the window's base and retries, its allowance, lifetime grants/refusals."""
        rows: list[dict[str, float | int | str]] = []
        for name in sorted(self._accounts):
            acc = self._account(name)
            rows.append({"dependency": name, "base": acc.base, "retries": acc.retries,
                         "allowance": self.allowance(name), "granted_total": acc.granted,
                         "refused_total": acc.refused})
        return rows

    # internals -------------------------------------------------------------------------------
    def _account(self, dependency: str) -> _Account:
        account = self._accounts.get(dependency)
        if account is None:
            account = self._accounts[dependency] = _Account()
        self._expire(account)
        return account

    def _expire(self, account: _Account) -> None:
        current = math.floor(self._clock.monotonic() / self._width)
        while account.slots and account.slots[0][0] <= current - BUDGET_BUCKETS:
            _, base, retries = account.slots.popleft()
            account.base -= base
            account.retries -= retries

    def _slot(self, dependency: str) -> tuple[_Account, list[int]]:
        account = self._account(dependency)
        current = math.floor(self._clock.monotonic() / self._width)
        if not account.slots or account.slots[-1][0] < current:
            account.slots.append([current, 0, 0])
        return account, account.slots[-1]
