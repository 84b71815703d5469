"""``BreakerGate``: the retry queue's ``AttemptGate`` — breaker-aware, budget-aware attempts.

Before an attempt the worker asks ``before_attempt(item, policy)``:

* the policy's breaker is open → defer to the breaker's ``retry_after`` (no attempt charged);
* the retry budget of that dependency is empty → defer to its turn in the budget's line, at most one
  budget window (no attempt charged);
* otherwise go ahead; the breaker permit taken here is settled by ``record(...)`` after the attempt,
  and a retry that succeeded gives its budget token back (the budget throttles failing retries only).

When a breaker closes, the items it deferred become due at once, but released at a bounded rate
(``retry.breaker_release_per_second``) through ``store.release_deferred`` so a recovering dependency
is not met by a stampede. ``run`` is that release loop, a ``Service``.

This module sits below ``daz.store`` and ``daz.retry`` in the dependency order, so it knows the queue
item, the policy, the store and the budget only by the small protocols below.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Protocol

import structlog

from daz.clock import Clock
from daz.errors import DazError
from daz.metrics import DazMetrics
from daz.resilience.breaker import CircuitBreaker, Permit
from daz.resilience.machine import BreakerState
from daz.resilience.registry import BreakerRegistry

log = structlog.get_logger("daz.resilience")

# A deferral shorter than this would only spin the worker: claim, defer, claim again.
MIN_DEFER_SECONDS = 0.1
RELEASE_TICK_SECONDS = 0.2
RELEASE_ERROR_PAUSE_SECONDS = 1.0
# A permit never settled by ``record`` (the worker was cancelled mid-attempt, or skipped ``record``) is
# handed back once its attempt's timeout plus this margin has passed, so a half-open breaker cannot
# be left waiting for a probe that will never report.
PERMIT_GRACE_SECONDS = 5.0
DEFAULT_ATTEMPT_TIMEOUT_SECONDS = 60.0


class ItemLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def operation_type(self) -> str: ...


class PolicyLike(Protocol):
    @property
    def breaker(self) -> str | None: ...


class BudgetLike(Protocol):
    def record_base(self, dependency: str, count: int = 1) -> None: ...

    def try_acquire(self, dependency: str) -> bool: ...

    def retry_after(self, dependency: str) -> float: ...

    def settle(self, dependency: str, granted_at: float, *, succeeded: bool) -> None: ...


class DeferredReleaser(Protocol):
    async def release_deferred(self, breaker_name: str, limit: int) -> int: ...


def dependency_of(item: ItemLike, policy: PolicyLike) -> str:
    """The budget account an attempt is charged to: its breaker, else its operation type."""
    return policy.breaker or item.operation_type


class BreakerGate:
    name = "resilience.breaker_release"

    def __init__(
        self,
        registry: BreakerRegistry,
        *,
        clock: Clock,
        budget: BudgetLike | None = None,
        store: DeferredReleaser | None = None,
        release_per_second: float = 50.0,
        on_release: Callable[[], None] | None = None,
        metrics: DazMetrics | None = None,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._budget = budget
        self._store = store
        self._batch = max(1, math.ceil(release_per_second * RELEASE_TICK_SECONDS))
        self._tick = self._batch / release_per_second
        self._on_release = on_release
        self._metrics = metrics
        self._permits: dict[int, tuple[Permit, float]] = {}  # item id → (permit, hand back after)
        # item id → (dependency, when its budget token was granted), oldest grant first
        self._grants: dict[int, tuple[str, float]] = {}
        self._grant_ttl = float(getattr(getattr(budget, "config", None), "window_seconds", 0.0) or 60.0)
        self._to_release: set[str] = set()
        self._wake = asyncio.Event()
        self.deferred_by_breaker = 0
        self.deferred_by_budget = 0
        self.released = 0
        # Every breaker, present and future: closes trigger releases, and its first-attempt requests
        # are the base traffic of the retry budget (so callers need not report them themselves).
        for breaker in registry.existing():
            self._hook(breaker)
        registry.on_create(self._hook)

    # AttemptGate -----------------------------------------------------------------------------
    def before_attempt(self, item: ItemLike, policy: PolicyLike) -> float | None:
        """None to go ahead, or seconds to defer the item without charging an attempt."""
        stale = self._permits.pop(item.id, None)
        if stale is not None:
            stale[0].cancel()
        permit: Permit | None = None
        breaker: CircuitBreaker | None = None
        if policy.breaker is not None:
            breaker = self._breaker(policy.breaker)
            # This task starts a new attempt: whatever it still holds belongs to an unsettled one.
            for leftover in breaker.unhold():
                leftover.cancel()
            permit = breaker.try_acquire(retry=True)
            if permit is None and self._hand_back_expired(breaker):
                permit = breaker.try_acquire(retry=True)
            if permit is None:
                self.deferred_by_breaker += 1
                if self._metrics is not None:
                    self._metrics.retry_deferred_by_breaker.labels(breaker=breaker.name).inc()
                return max(breaker.retry_after(), MIN_DEFER_SECONDS)
        dependency = dependency_of(item, policy)
        if self._budget is not None:
            unsettled = self._grants.pop(item.id, None)
            if unsettled is not None:  # the item's previous attempt never reported
                self._budget.settle(*unsettled, succeeded=False)
            if not self._budget.try_acquire(dependency):
                if permit is not None:
                    permit.cancel()
                self.deferred_by_budget += 1
                return max(self._budget.retry_after(dependency), MIN_DEFER_SECONDS)
            self._forget_old_grants()
            self._grants[item.id] = (dependency, self._clock.monotonic())
        if permit is not None and breaker is not None:
            timeout = getattr(item, "timeout_seconds", None) or DEFAULT_ATTEMPT_TIMEOUT_SECONDS
            self._permits[item.id] = (permit, self._clock.monotonic() + timeout + PERMIT_GRACE_SECONDS)
            # The handler's own calls through this breaker (e.g. the SQL service's) are covered by
            # this permit instead of being admitted and counted a second time.
            breaker.hold(permit)
        return None

    def record(self, item: ItemLike, policy: PolicyLike, outcome: BaseException | None,
               duration: float) -> None:
        """Settle the attempt: ``outcome`` is the handler's exception, or None when it succeeded."""
        grant = self._grants.pop(item.id, None)
        if grant is not None and self._budget is not None:
            self._budget.settle(*grant, succeeded=outcome is None)
        held = self._permits.pop(item.id, None)
        if held is None:
            return
        permit = held[0]
        permit.breaker.unhold(permit)
        permit.done(outcome, duration)

    def _forget_old_grants(self) -> None:
        # A grant whose attempt never reported (cancelled) within a budget window counts as failed;
        # settling it then keeps the map bounded by the grants of one window.
        horizon = self._clock.monotonic() - self._grant_ttl
        while self._grants and self._budget is not None:
            oldest = next(iter(self._grants))
            if self._grants[oldest][1] > horizon:
                return
            self._budget.settle(*self._grants.pop(oldest), succeeded=False)

    def _hand_back_expired(self, breaker: CircuitBreaker) -> bool:
        now = self._clock.monotonic()
        expired = [i for i, (p, until) in self._permits.items() if p.breaker is breaker and until <= now]
        for item_id in expired:
            permit, _ = self._permits.pop(item_id)
            log.warning("breaker.permit_expired", breaker=breaker.name, item_id=item_id)
            permit.cancel()
        return bool(expired)

    # release loop ----------------------------------------------------------------------------
    def _breaker(self, name: str) -> CircuitBreaker:
        return self._registry.get(name)

    def _hook(self, breaker: CircuitBreaker) -> None:
        breaker.on_close(self._closed)
        budget = self._budget
        if budget is not None:
            name = breaker.name
            breaker.on_request(lambda: budget.record_base(name))

    def _closed(self, breaker: CircuitBreaker) -> None:
        self._to_release.add(breaker.name)
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Release items deferred by breakers that closed, ``release_per_second`` at most."""
        store = self._store
        if store is None:
            await stopping.wait()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._stop_on(stopping), name=f"{self.name}.stop")
            while not stopping.is_set():
                await self._wake.wait()
                self._wake.clear()
                while self._to_release and not stopping.is_set():
                    await self._release(store, self._to_release.pop(), stopping)

    async def _stop_on(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self._wake.set()

    async def _release(self, store: DeferredReleaser, name: str, stopping: asyncio.Event) -> None:
        breaker = self._registry.get(name)
        while not stopping.is_set() and breaker.state in (BreakerState.CLOSED, BreakerState.DISABLED):
            try:
                released = await store.release_deferred(name, self._batch)
            except DazError as exc:
                if not exc.retryable:
                    raise
                log.warning("breaker.release_failed", breaker=name, error=str(exc))
                await self._pause(RELEASE_ERROR_PAUSE_SECONDS, stopping)
                continue
            self.released += released
            if released:
                log.info("breaker.released_deferred", breaker=name, count=released)
                if self._on_release is not None:
                    self._on_release()
            if released < self._batch:
                return
            await self._pause(self._tick, stopping)

    async def _pause(self, seconds: float, stopping: asyncio.Event) -> None:
        if not stopping.is_set():
            await self._clock.sleep(seconds)
