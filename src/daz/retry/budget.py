"""The process-wide retry budget: failed retries may add at most ``ratio`` of base traffic plus a floor.

Per dependency, over a sliding window of ``window_seconds`` (ten buckets):

    retries in flight or failed in window  <=  ratio * first attempts in window
                                               +  min_per_second * window_seconds

First attempts are reported with ``record_base``; every retry asks ``try_acquire`` first, and a retry
that then succeeds gives its token back with ``refund`` (as gRPC's retry throttling and Envoy's
retry budgets do, the budget throttles retries that fail, not the ones a healthy dependency serves).
A refusal means "not now": callers defer (the retry queue reschedules the item without charging an
attempt), never drop. While the dependency is down no retry succeeds and nothing is refunded, so
retries stay a bounded fraction of real traffic however many items are waiting; once it serves
again, a backlog drains at the rate the dependency completes it, its concurrency capped by the
allowance.
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
# Slot fields: bucket index, first attempts, retries still charged (granted minus refunded), refunds.
_INDEX, _BASE, _RETRIES, _REFUNDS = range(4)


@dataclass(slots=True)
class _Account:
    # [bucket index, base, retries, refunds], oldest first
    slots: deque[list[int]] = field(default_factory=deque)
    base: int = 0
    retries: int = 0
    refunds: int = 0
    refused: int = 0
    granted: int = 0
    refunded: int = 0
    in_flight: int = 0  # granted, not yet settled
    # Refused retries still waiting for their turn (fractional: the line drains continuously at the
    # service rate), as of ``line_at``.
    line: float = 0.0
    line_at: float = 0.0


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
        slot[_BASE] += count
        account.base += count

    def try_acquire(self, dependency: str) -> bool:
        """Take one retry token; False (counted in ``daz_retry_budget_exhausted_total``) when empty.

        Each refusal also takes the next place in the line ``retry_after`` reports.
        """
        if not self.config.enabled:
            return True
        account, slot = self._slot(dependency)
        if account.retries + 1 > self.allowance(dependency):
            account.refused += 1
            now = self._clock.monotonic()
            rate = self._service_rate(account, now)
            # The line is bounded by one window: a refused retry comes back within it and is either
            # served or placed again, so a long backlog never pushes anyone minutes out.
            waiting = max(0.0, account.line - (now - account.line_at) * rate) + 1.0
            account.line = min(waiting, rate * self.config.window_seconds)
            account.line_at = now
            if self._metrics is not None:
                self._metrics.retry_budget_exhausted.labels(dependency=dependency).inc()
            if account.refused == 1 or account.refused % 1000 == 0:
                log.warning("retry.budget_exhausted", dependency=dependency, retries=account.retries,
                            base=account.base, refused=account.refused)
            return False
        slot[_RETRIES] += 1
        account.retries += 1
        account.granted += 1
        account.in_flight += 1
        return True

    def settle(self, dependency: str, granted_at: float, *, succeeded: bool) -> None:
        """The retry granted at monotonic ``granted_at`` ended; when it ``succeeded`` its token comes back.

        Call it once per granted retry (an attempt that never reported counts as failed). Refunding
        is a no-op when the grant's bucket has already left the window (its token is back anyway).
        """
        if not self.config.enabled:
            return
        account, current = self._slot(dependency)
        account.in_flight = max(0, account.in_flight - 1)
        if not succeeded:
            return
        index = math.floor(granted_at / self._width)
        for slot in reversed(account.slots):
            if slot[_INDEX] == index:
                if slot[_RETRIES] > 0:
                    slot[_RETRIES] -= 1
                    account.retries -= 1
                    current[_REFUNDS] += 1
                    account.refunds += 1
                    account.refunded += 1
                return
            if slot[_INDEX] < index:
                return

    def allowance(self, dependency: str) -> float:
        """How many retries the current window allows in flight or failed."""
        return self._allowance(self._account(dependency))

    def retry_after(self, dependency: str) -> float:
        """Seconds the latest refused retry should wait for its turn.

        Refused retries form a line served at the rate tokens came back over the last window (the
        allowance, plus the refunds of retries that succeeded), so a backlog spreads out instead of
        coming back together and being refused again. Its head is when the next token frees: the
        oldest bucket holding retries expires, or sooner (one bucket) while retries are in flight or
        were refunded, since a success gives its token back. Never more than one window: the wait
        does not grow with the backlog nor with repeated refusals.
        """
        account = self._account(dependency)
        now = self._clock.monotonic()
        window = self.config.window_seconds
        first_token = window
        for slot in account.slots:
            if slot[_RETRIES]:
                first_token = max((slot[_INDEX] + BUDGET_BUCKETS) * self._width - now, self._width)
                break
        if account.in_flight or account.refunds:
            first_token = min(first_token, self._width)
        line = max(0.0, account.line - (now - account.line_at) * self._service_rate(account, now))
        return min(max(first_token, line / self._service_rate(account, now)), window)

    def snapshot(self) -> list[dict[str, float | int | str]]:
        """Per dependency: the window's base and charged retries, its allowance, lifetime totals."""
        rows: list[dict[str, float | int | str]] = []
        for name in sorted(self._accounts):
            acc = self._account(name)
            rows.append({"dependency": name, "base": acc.base, "retries": acc.retries,
                         "allowance": self._allowance(acc), "granted_total": acc.granted,
                         "refunded_total": acc.refunded, "refused_total": acc.refused})
        return rows

    # internals -------------------------------------------------------------------------------
    def _allowance(self, account: _Account) -> float:
        return self.config.ratio * account.base + self.config.min_per_second * self.config.window_seconds

    def _service_rate(self, account: _Account, now: float) -> float:
        """Tokens per second coming back, the highest of: the allowance over the window (what expiry
        frees when every retry fails); the refunds of the last one to two buckets (what successes
        free); the retries in flight per bucket (each frees its token when it succeeds, which a
        healthy dependency does well within a bucket)."""
        tokens = max(self._allowance(account), account.in_flight * BUDGET_BUCKETS)
        nominal = tokens / self.config.window_seconds
        recent = 0
        since = now
        current = math.floor(now / self._width)
        for slot in reversed(account.slots):
            if slot[_INDEX] < current - 1:
                break
            recent += slot[_REFUNDS]
            since = slot[_INDEX] * self._width
        measured = recent / (now - since) if recent and now > since else 0.0
        rate = max(nominal, measured)
        return rate if rate > 0 else 1.0 / self.config.window_seconds

    def _account(self, dependency: str) -> _Account:
        account = self._accounts.get(dependency)
        if account is None:
            account = self._accounts[dependency] = _Account()
        self._expire(account)
        return account

    def _expire(self, account: _Account) -> None:
        current = math.floor(self._clock.monotonic() / self._width)
        while account.slots and account.slots[0][_INDEX] <= current - BUDGET_BUCKETS:
            slot = account.slots.popleft()
            account.base -= slot[_BASE]
            account.retries -= slot[_RETRIES]
            account.refunds -= slot[_REFUNDS]

    def _slot(self, dependency: str) -> tuple[_Account, list[int]]:
        account = self._account(dependency)
        current = math.floor(self._clock.monotonic() / self._width)
        if not account.slots or account.slots[-1][_INDEX] < current:
            account.slots.append([current, 0, 0, 0])
        return account, account.slots[-1]
