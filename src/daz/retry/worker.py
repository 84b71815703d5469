"""One retry worker: claim a batch under a lease, run each item's handler, persist the outcomes.

Claims are leased and fenced: the store bumps the item's fence on every claim, and every outcome
is written with the fence the claim returned. A worker whose lease expired (it stalled, or its
process was paused) and whose item another worker reclaimed gets ``StaleFence``: its late result
is discarded, logged and counted. Outcomes are written under ``asyncio.shield`` so a shutdown that
cancels the worker still records what already happened.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Protocol, TypeVar

import structlog
from prometheus_client import Counter, Histogram

from daz.clock import Clock
from daz.errors import DazError, NoHandler, StaleFence, StoreError
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.retry.policy import DeadLetter, Retry, RetryPolicy, decide, describe
from daz.store.base import QueueItem, RetryStore

log = structlog.get_logger("daz.retry")
T = TypeVar("T")

Handler = Callable[[QueueItem], Awaitable[None]]
BUS_HANDLER_PREFIX: Final = "retry.handle."
# Below this an idle worker would spin on items it cannot take (other owners' targets, locked rows).
IDLE_FLOOR_SECONDS: Final = 0.25
STORE_ERROR_PAUSE_SECONDS: Final = 1.0
PERSIST_ATTEMPTS: Final = 3
PERSIST_RETRY_SECONDS: Final = 0.2
PERSIST_GRACE_SECONDS: Final = 10.0
# Reported to the gate for an attempt that never reached a handler: a BaseException, which the
# breaker counts as "not called" and so hands the permit back (docs/resilience.md).
_NOT_ATTEMPTED: Final = asyncio.CancelledError("no handler: the attempt never ran")


class AttemptGate(Protocol):
    """Consulted around every attempt (implemented by ``daz.resilience.gate.BreakerGate``)."""

    def before_attempt(self, item: QueueItem, policy: RetryPolicy) -> float | None:
        """None to go ahead, or seconds to defer the item without charging an attempt."""
        ...

    def record(self, item: QueueItem, policy: RetryPolicy, outcome: BaseException | None,
               duration: float) -> None:
        """``outcome`` is the attempt's exception, or None when it succeeded."""
        ...


class AttemptTimeout(DazError):
    """The handler did not finish within the policy's ``timeout_seconds``."""

    retryable = True


@dataclass(frozen=True, slots=True)
class Outcome:
    item: QueueItem
    policy: RetryPolicy
    duration: float
    error: BaseException | None = None
    decision: Retry | DeadLetter | None = None
    defer_seconds: float | None = None
    deferred_by: str | None = None


@dataclass(slots=True)
class WorkerDeps:
    """What a worker needs from its ``RetryQueue``: shared, read live (handlers may be added later)."""

    store: RetryStore
    clock: Clock
    rng: random.Random
    metrics: DazMetrics
    bus: EventBus | None
    gate: AttemptGate | None
    handlers: dict[str, Handler]
    policy: Callable[[str], RetryPolicy]
    batch_size: int
    lease_seconds: float
    heartbeat_seconds: float
    poll_seconds: float
    no_handler_delay_seconds: float
    targets: Sequence[str] | None = None
    operation_types: Sequence[str] | None = None
    stats: dict[str, int] = field(default_factory=dict)

    _success: dict[str, tuple[Counter, Histogram]] = field(default_factory=dict)

    def success_metrics(self, operation_type: str) -> tuple[Counter, Histogram]:
        """Labelled children cached per type: ``labels()`` is a lock and a dict walk per call."""
        found = self._success.get(operation_type)
        if found is None:
            found = self._success[operation_type] = (
                self.metrics.retry_success.labels(operation_type=operation_type),
                self.metrics.retry_duration.labels(operation_type=operation_type, outcome="success"),
            )
        return found

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def publish(self, name: str, item: QueueItem, **data: object) -> None:
        if self.bus is None:
            return
        self.bus.publish(
            name,
            {"id": item.id, "operation_type": item.operation_type, "target": item.target,
             "attempt": item.attempt, "correlation_id": item.correlation_id, **data},
            correlation_id=item.correlation_id,
            source="retry",
        )


class Worker:
    """A claim loop. ``wake()`` makes an idle worker look for work now."""

    def __init__(self, deps: WorkerDeps, owner: str, on_full_batch: Callable[[], None] | None = None) -> None:
        self.deps = deps
        self.owner = owner
        self.idle = False
        self.reserved = 0
        self._inbox: list[QueueItem] = []
        self._accepting = False
        self._overdue: set[int] = set()
        self._wake = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._on_full_batch = on_full_batch

    def wake(self) -> None:
        self._wake.set()

    # the local hand-off --------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Idle, running, not already woken, promised a hand-off or holding one: free to take one.

        (``idle`` stays True until a woken worker next runs, hence the wake and inbox checks.)
        """
        return (self.idle and self._accepting and not self.reserved and not self._inbox
                and not self._wake.is_set())

    def reserve(self) -> None:
        """Promise a hand-off (its rows are being inserted): the worker waits for it instead of claiming."""
        self.reserved += 1

    def unreserve(self) -> None:
        self.reserved -= 1
        self._wake.set()

    def deliver(self, items: Sequence[QueueItem]) -> bool:
        """Take items already claimed under this worker's name; False once the loop has stopped."""
        if not self._accepting:
            return False
        self._inbox.extend(items)
        self._wake.set()
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        # The idle wait is one Event: wake(), the stop watcher and the idle timer all set it, so a
        # NOTIFY reaches the claim in one loop hop (a TaskGroup of three waiters per idle period cost
        # several hops and three task creations on the idle-pickup path).
        async with asyncio.TaskGroup() as group:
            self._group = group
            watcher = group.create_task(stopping.wait(), name=f"{self.owner}.stop")
            watcher.add_done_callback(self._on_timer)
            try:
                await self._loop(stopping)
            finally:
                self._accepting = False
                watcher.cancel()
                self._group = None

    async def _loop(self, stopping: asyncio.Event) -> None:
        d = self.deps
        self._accepting = True
        while True:
            self._wake.clear()  # before the claim, so a wake-up during it is not lost
            if self._inbox:  # handed off: already claimed under our name, leases running
                items, self._inbox = self._inbox, []
                await self.process(items)
                continue
            if stopping.is_set():
                self._accepting = False  # no await since the inbox check: nothing is stranded
                return
            if self.reserved:  # a hand-off is being inserted; its delivery (or failure) wakes us
                await self._idle(stopping, d.poll_seconds)
                continue
            try:
                items = await d.store.claim_due(
                    d.batch_size, d.lease_seconds, self.owner,
                    operation_types=d.operation_types, targets=d.targets,
                )
            except StoreError as exc:
                log.warning("retry.claim_failed", owner=self.owner, error=str(exc))
                d.count("claim_errors")
                await self._idle(stopping, STORE_ERROR_PAUSE_SECONDS)
                continue
            if items:
                if len(items) >= d.batch_size and self._on_full_batch is not None:
                    self._on_full_batch()  # a backlog: bring another idle worker in
                await self.process(items)
                continue
            self.idle = True
            try:
                await self._idle(stopping, await self._until_due())
            finally:
                self.idle = False

    async def _until_due(self) -> float:
        d = self.deps
        try:
            due = await d.store.next_due_at()
        except StoreError:
            return d.poll_seconds
        if due is None:
            return d.poll_seconds
        wait = (due - d.clock.now()).total_seconds()
        return min(d.poll_seconds, max(wait, IDLE_FLOOR_SECONDS))

    async def _idle(self, stopping: asyncio.Event, seconds: float) -> None:
        if stopping.is_set() or self._wake.is_set():
            return
        group = self._group
        if group is None:  # process() used on its own, outside run(): nothing to wait for
            return
        timer = group.create_task(self.deps.clock.sleep(seconds), name=f"{self.owner}.sleep")
        timer.add_done_callback(self._on_timer)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()  # finishes inside the worker's group; nothing here waits for it

    def _on_timer(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled():
            self._wake.set()

    # one batch ---------------------------------------------------------------------------------
    async def process(self, items: Sequence[QueueItem]) -> None:
        d = self.deps
        reclaimed = [i for i in items if i.reclaimed]
        if reclaimed:
            d.metrics.retry_reclaimed.inc(len(reclaimed))
            d.count("reclaimed", len(reclaimed))
            for item in reclaimed:
                log.warning("retry.reclaimed", id=item.id, operation_type=item.operation_type,
                            fence=item.fence, correlation_id=item.correlation_id, owner=self.owner)
                d.publish("retry.reclaimed", item, fence=item.fence)
        async with asyncio.TaskGroup() as group:
            beat = group.create_task(self._heartbeats(items), name=f"{self.owner}.heartbeat")
            if len(items) == 1:  # the common idle-pickup case: no task per attempt
                outcomes = [await self._attempt(items[0])]
            else:
                outcomes = await self._run_batch(group, items)
            beat.cancel()
        persist = asyncio.ensure_future(self._persist(outcomes))
        try:
            await asyncio.shield(persist)
        except asyncio.CancelledError:
            # Cancelled mid-write: let the write finish (bounded) so no outcome is lost, then stop.
            await asyncio.wait({persist}, timeout=PERSIST_GRACE_SECONDS)
            raise

    async def _heartbeats(self, items: Sequence[QueueItem]) -> None:
        d = self.deps
        alive = {i.id: i.fence for i in items}
        while alive:
            await d.clock.sleep(d.heartbeat_seconds)
            for item_id, fence in list(alive.items()):
                try:
                    ok = await d.store.heartbeat(item_id, fence, d.lease_seconds)
                except StoreError as exc:
                    log.warning("retry.heartbeat_failed", id=item_id, error=str(exc))
                    continue
                if not ok:
                    alive.pop(item_id)
                    log.warning("retry.lease_lost", id=item_id, fence=fence, owner=self.owner)

    async def _attempt(self, item: QueueItem, *, bounded: bool = True) -> Outcome:
        """One attempt. ``bounded=False``: the caller enforces ``timeout_seconds`` (batch deadlines)."""
        d = self.deps
        policy = d.policy(item.operation_type)
        handler = d.handlers.get(item.operation_type)
        if handler is None and d.bus is None:  # nobody to run it: not an attempt, so no gate permit
            return self._no_handler(item, policy, NoHandler(
                f"no handler for '{item.operation_type}'", operation_type=item.operation_type))
        if d.gate is not None:
            defer = d.gate.before_attempt(item, policy)
            if defer is not None:
                return Outcome(item, policy, 0.0, defer_seconds=defer, deferred_by=policy.breaker)
        started = d.clock.monotonic()
        error: BaseException | None = None
        try:
            if bounded:
                async with asyncio.timeout(item.timeout_seconds):
                    await self._call(handler, item)
            else:
                await self._call(handler, item)
        except TimeoutError:
            error = _timeout_error(item)
        except asyncio.CancelledError as exc:
            # The batch deadline cancels an overdue attempt; like asyncio.timeout, turn only that
            # cancellation into a timeout (uncancel() == 0), so record() still runs in this task.
            task = asyncio.current_task()
            if bounded or item.id not in self._overdue or task is None or task.uncancel() > 0:
                # Shutdown: settle the gate's permit (a cancellation is not held against the
                # dependency) so a half-open breaker is not left waiting for this probe.
                if d.gate is not None:
                    d.gate.record(item, policy, exc, d.clock.monotonic() - started)
                raise
            error = _timeout_error(item)
        except NoHandler as exc:
            # No bus responder: the dependency was never asked; hand the permit back uncounted.
            if d.gate is not None:
                d.gate.record(item, policy, _NOT_ATTEMPTED, 0.0)
            return self._no_handler(item, policy, exc)
        except Exception as exc:  # noqa: BLE001 - any handler failure is an outcome to record
            error = exc
        return self._finish(item, policy, error, d.clock.monotonic() - started)

    def _no_handler(self, item: QueueItem, policy: RetryPolicy, exc: NoHandler) -> Outcome:
        d = self.deps
        d.count("no_handler")
        log.warning("retry.no_handler", id=item.id, operation_type=item.operation_type)
        return Outcome(item, policy, 0.0, error=exc, defer_seconds=d.no_handler_delay_seconds)

    async def _call(self, handler: Handler | None, item: QueueItem) -> None:
        if handler is not None:
            await handler(item)
        else:
            await self._via_bus(item)

    def _finish(
        self, item: QueueItem, policy: RetryPolicy, error: BaseException | None, duration: float
    ) -> Outcome:
        d = self.deps
        if d.gate is not None:
            d.gate.record(item, policy, error, duration)
        if error is None:
            return Outcome(item, policy, duration)
        return Outcome(item, policy, duration, error=error,
                       decision=decide(item, error, policy, d.clock.now(), d.rng))

    async def _run_batch(self, group: asyncio.TaskGroup, items: Sequence[QueueItem]) -> list[Outcome]:
        """Attempts run concurrently; one timer per batch enforces every item's timeout (a timer per
        item cost more than a no-op handler)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = {
            group.create_task(self._attempt(i, bounded=False), name=f"retry.attempt.{i.id}"): i for i in items
        }
        deadline = {t: start + i.timeout_seconds for t, i in tasks.items()}
        timed_out: set[asyncio.Task[Outcome]] = set()
        pending: set[asyncio.Task[Outcome]] = set(tasks)
        while pending:
            live = [deadline[t] for t in pending if t not in timed_out]
            wait = max(0.0, min(live) - loop.time()) if live else None
            _, pending = await asyncio.wait(pending, timeout=wait)
            now = loop.time()
            for task in pending:
                if task not in timed_out and deadline[task] <= now:
                    self._overdue.add(tasks[task].id)
                    task.cancel()
                    timed_out.add(task)
        self._overdue.difference_update(i.id for i in items)
        return [task.result() for task in tasks]

    async def _via_bus(self, item: QueueItem) -> None:
        bus = self.deps.bus
        name = BUS_HANDLER_PREFIX + item.operation_type
        if bus is None:
            raise NoHandler(f"no handler for '{item.operation_type}'", operation_type=item.operation_type)
        await bus.request(name, item, timeout=item.timeout_seconds, correlation_id=item.correlation_id,
                          source="retry")

    # persisting outcomes ----------------------------------------------------------------------
    async def _persist(self, outcomes: Sequence[Outcome]) -> None:
        d = self.deps
        done = [o for o in outcomes if o.error is None and o.defer_seconds is None]
        if done:
            stale = await self._with_retries(
                lambda: d.store.complete_many([(o.item.id, o.item.fence) for o in done]), "complete"
            )
            if stale is None:
                return_to_lease = [o.item.id for o in done]
                log.error("retry.outcomes_unrecorded", ids=return_to_lease[:20], count=len(return_to_lease))
                done = []
            stale_ids = set(stale or [])
            for o in done:
                if o.item.id in stale_ids:
                    self._stale(o)
                    continue
                success, duration = d.success_metrics(o.item.operation_type)
                success.inc()
                duration.observe(o.duration)
                d.publish("retry.succeeded", o.item, duration=o.duration)
            d.count("succeeded", len(done) - len(stale_ids))
        for o in outcomes:
            if o.error is not None or o.defer_seconds is not None:
                await self._persist_other(o)

    async def _persist_other(self, o: Outcome) -> None:
        d = self.deps
        item, op = o.item, o.item.operation_type
        try:
            if o.defer_seconds is not None:
                at = d.clock.now() + timedelta(seconds=o.defer_seconds)
                await self._with_retries(lambda: d.store.reschedule(
                    item.id, item.fence, at, None, count_attempt=False, deferred_by=o.deferred_by
                ), "defer", raise_stale=True)
                d.count("deferred")
                d.publish("retry.deferred", item, delay=o.defer_seconds, deferred_by=o.deferred_by)
                return
            d.metrics.retry_failure.labels(operation_type=op).inc()
            if isinstance(o.decision, Retry):
                decision = o.decision
                await self._with_retries(lambda: d.store.reschedule(
                    item.id, item.fence, decision.at, decision.error
                ), "reschedule", raise_stale=True)
                d.metrics.retry_duration.labels(operation_type=op, outcome="retry").observe(o.duration)
                d.count("rescheduled")
                log.info("retry.rescheduled", id=item.id, operation_type=op, attempt=item.attempt + 1,
                         delay=round(decision.delay_seconds, 3), error=decision.error,
                         correlation_id=item.correlation_id)
                d.publish("retry.rescheduled", item, delay=decision.delay_seconds, error=decision.error)
            elif isinstance(o.decision, DeadLetter):
                reason = o.decision.reason
                await self._with_retries(lambda: d.store.dead_letter(item.id, item.fence, reason),
                                         "dead_letter", raise_stale=True)
                d.metrics.retry_dead_letter.labels(operation_type=op).inc()
                d.metrics.retry_duration.labels(operation_type=op, outcome="dead_letter").observe(o.duration)
                d.count("dead_lettered")
                log.warning("retry.dead_lettered", id=item.id, operation_type=op, attempt=item.attempt + 1,
                            reason=reason, correlation_id=item.correlation_id)
                d.publish("retry.dead_lettered", item, reason=reason,
                          error=describe(o.error) if o.error is not None else reason)
        except StaleFence:
            self._stale(o)

    def _stale(self, o: Outcome) -> None:
        d = self.deps
        d.metrics.retry_stale_fence.inc()
        d.count("stale_fence")
        log.warning("retry.stale_fence", id=o.item.id, fence=o.item.fence, owner=self.owner,
                    operation_type=o.item.operation_type, correlation_id=o.item.correlation_id)

    async def _with_retries(
        self, write: Callable[[], Awaitable[T]], what: str, *, raise_stale: bool = False
    ) -> T | None:
        """A failed write is retried briefly; after that the lease expiry hands the item to a reclaim."""
        for attempt in range(1, PERSIST_ATTEMPTS + 1):
            try:
                return await write()
            except StaleFence:
                if raise_stale:
                    raise
                return None
            except StoreError as exc:
                if attempt == PERSIST_ATTEMPTS:
                    log.error("retry.persist_failed", what=what, owner=self.owner,  # noqa: TRY400
                              error=str(exc))
                    self.deps.count("persist_failed")
                    return None
                await self.deps.clock.sleep(PERSIST_RETRY_SECONDS * attempt)
        return None


def _timeout_error(item: QueueItem) -> AttemptTimeout:
    return AttemptTimeout(f"attempt timed out after {item.timeout_seconds:g}s",
                          correlation_id=item.correlation_id, operation_type=item.operation_type)
