"""``RetryQueue``: the retry service. Schedules work, runs ``worker_count`` claim loops, keeps gauges.

Wake-ups: a local ``schedule`` wakes this process's workers at once; other processes' schedules
arrive through the store's ``wakeups`` (PostgreSQL LISTEN/NOTIFY). An idle worker otherwise sleeps
until the earliest due time or lease expiry, at most ``poll_interval_seconds``.
The queue publishes ``retry.*`` events and never subscribes to them.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Final

import structlog

from daz.aio import sleep_or_stop
from daz.clock import Clock, SystemClock
from daz.config import RetryConfig
from daz.errors import StoreError, StoreUnavailable
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.retry.policy import RetryPolicy, policy_for
from daz.retry.worker import AttemptGate, Handler, Worker, WorkerDeps
from daz.store.base import STATUSES, ItemStatus, NewItem, QueueItem, RetryStore

log = structlog.get_logger("daz.retry")

Fallback = Callable[[list[NewItem]], Awaitable[None]]
SECONDS_PER_DAY: Final = 86400.0


class RetryQueue:
    """A ``Service`` (``name``, ``run(stopping)``) that owns the retry workers."""

    name = "retry"

    def __init__(  # noqa: PLR0917 - positional order is the documented contract (§4)
        self,
        store: RetryStore,
        config: RetryConfig,
        bus: EventBus | None = None,
        metrics: DazMetrics | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        gate: AttemptGate | None = None,
        *,
        on_store_unavailable: Fallback | None = None,
        owner_prefix: str | None = None,
        store_wake_listeners: Iterable[Callable[[], None]] = (),
    ) -> None:
        self.store = store
        self.config = config
        self.bus = bus
        self.metrics = metrics if metrics is not None else DazMetrics()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng if rng is not None else random.Random()
        self._fallback = on_store_unavailable
        self._policies: dict[str, RetryPolicy] = {}
        # Also called when another process's schedule wakes this one (one LISTEN for all).
        self._wake_listeners: list[Callable[[], None]] = list(store_wake_listeners)
        self.deps = WorkerDeps(
            store=store, clock=self.clock, rng=self.rng, metrics=self.metrics, bus=bus, gate=gate,
            handlers={}, policy=self.policy, batch_size=config.batch_size,
            lease_seconds=config.lease_seconds, heartbeat_seconds=config.heartbeat_interval_seconds,
            poll_seconds=config.poll_interval_seconds,
            no_handler_delay_seconds=config.no_handler_delay_seconds,
        )
        prefix = owner_prefix or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.workers = [
            Worker(self.deps, f"{prefix}:w{i}", on_full_batch=self.wake) for i in range(config.worker_count)
        ]

    # configuration -----------------------------------------------------------------------------
    def register(self, operation_type: str, handler: Handler) -> None:
        """Run ``handler(item)`` for items of ``operation_type``; raise a ``DazError`` to fail."""
        self.deps.handlers[operation_type] = handler

    def set_gate(self, gate: AttemptGate | None) -> None:
        self.deps.gate = gate

    def set_fallback(self, fallback: Fallback | None) -> None:
        """Where ``schedule`` puts items while the store is unreachable (the local spool)."""
        self._fallback = fallback

    def _store_woke(self) -> None:
        self.wake()
        for listener in self._wake_listeners:
            listener()

    def set_targets(self, targets: Iterable[str] | None) -> None:
        """Claim targeted items only for these targets (rooms this instance owns); None = all."""
        self.deps.targets = tuple(targets) if targets is not None else None

    def policy(self, operation_type: str) -> RetryPolicy:
        found = self._policies.get(operation_type)
        if found is None:
            found = self._policies[operation_type] = policy_for(self.config, operation_type)
        return found

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start: succeeded, rescheduled, dead_lettered, reclaimed, stale_fence, …"""
        return self.deps.stats

    # scheduling --------------------------------------------------------------------------------
    def prepare(self, item: NewItem) -> NewItem:
        """Fill what the caller left out from the policy; the first retry waits ``initial_delay``."""
        policy = self.policy(item.operation_type)
        return replace(
            item,
            correlation_id=item.correlation_id or uuid.uuid4().hex,
            max_retries=item.max_retries if item.max_retries is not None else policy.max_retries,
            timeout_seconds=item.timeout_seconds or policy.timeout_seconds,
            retry_after=item.retry_after or self.clock.now() + timedelta(seconds=policy.delay(1, self.rng)),
        )

    async def schedule(self, *items: NewItem) -> list[int]:
        """Persist ``items`` (one round-trip); falls back to the spool while the store is down.

        Returns the ids, or ``[]`` when the items went to the fallback.
        """
        if not items:
            return []
        ready = [self.prepare(i) for i in items]
        worker = self._handoff_worker(ready)
        try:
            ids = (await self._hand_off(worker, ready) if worker is not None
                   else await self.store.schedule(ready))
        except StoreUnavailable as exc:
            if self._fallback is None:
                raise
            log.warning("retry.schedule_spooled", count=len(ready), error=str(exc))
            await self._fallback(ready)
            return []
        for item, item_id in zip(ready, ids, strict=True):
            self.metrics.retry_scheduled.labels(operation_type=item.operation_type).inc()
            if self.bus is not None:
                self.bus.publish(
                    "retry.scheduled",
                    {"id": item_id, "operation_type": item.operation_type, "target": item.target,
                     "retry_after": item.retry_after.isoformat() if item.retry_after else None,
                     "correlation_id": item.correlation_id},
                    correlation_id=item.correlation_id, source="retry",
                )
        if worker is None:
            self.wake()
        return ids

    def _handoff_worker(self, ready: list[NewItem]) -> Worker | None:
        """An idle worker that can take all of ``ready`` at once, or None for the normal path.

        Only items due now, with a handler in this process, that this instance may claim (its
        operation types and targets), at most one batch. A worker is idle only after a claim found
        nothing, so a hand-off never jumps a backlog this instance could have claimed.
        """
        d = self.deps
        if len(ready) > d.batch_size:
            return None
        now = self.clock.now()
        for item in ready:
            if item.retry_after is None or item.retry_after > now or item.operation_type not in d.handlers:
                return None
            if d.operation_types is not None and item.operation_type not in d.operation_types:
                return None
            if d.targets is not None and item.target is not None and item.target not in d.targets:
                return None
        return next((w for w in self.workers if w.available), None)

    async def _hand_off(self, worker: Worker, ready: list[NewItem]) -> list[int]:
        """Insert ``ready`` already claimed by ``worker`` and put them in its inbox: no NOTIFY, no claim.

        The rows are committed and fenced before any handler starts, so a crash from here on is a
        crashed claim: the lease expires and any worker reclaims them. If this call is cancelled
        mid-insert the same holds for whatever the insert committed.
        """
        worker.reserve()
        try:
            result = await self.store.schedule_claimed(ready, worker.owner, self.config.lease_seconds)
        finally:
            worker.unreserve()
        if result.claimed:
            self.deps.count("handed_off", len(result.claimed))
            if not worker.deliver(result.claimed):  # stopped meanwhile: make them claimable again
                await self._unclaim(result.claimed)
        return result.ids

    async def _unclaim(self, items: list[QueueItem]) -> None:
        now = self.clock.now()
        for item in items:
            try:
                await self.store.reschedule(item.id, item.fence, now, None, count_attempt=False)
            except StoreError as exc:  # StaleFence included: the lease expiry hands it to a reclaim
                log.warning("retry.handoff_return_failed", id=item.id, error=str(exc))
        self.wake()

    def wake(self) -> None:
        """Make one idle worker look for work now; it brings in more if it finds a full batch.

        Waking one rather than all keeps a single new item from starting a claim race on every
        worker. With no worker idle, all are flagged: each one in a claim re-checks right after it.
        """
        for worker in self.workers:
            if worker.available:
                worker.wake()
                return
        for worker in self.workers:
            worker.wake()

    # running -----------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        async with self.store.wakeups(self._store_woke), asyncio.TaskGroup() as group:
            for worker in self.workers:
                suffix = worker.owner.rsplit(":", 1)[-1]
                group.create_task(worker.run(stopping), name=f"retry.worker.{suffix}")
            group.create_task(self._maintenance(stopping), name="retry.maintenance")
            log.info("retry.started", workers=len(self.workers), backend=self.store.backend)
        log.info("retry.stopped", **self.stats)

    async def _maintenance(self, stopping: asyncio.Event) -> None:
        next_cleanup = self.clock.monotonic()
        while not stopping.is_set():
            await self.refresh_gauges()
            if self.clock.monotonic() >= next_cleanup:
                next_cleanup = self.clock.monotonic() + self.config.cleanup_interval_seconds
                try:
                    removed = await self.store.cleanup(
                        timedelta(seconds=self.config.retention_days * SECONDS_PER_DAY)
                    )
                except StoreError as exc:
                    log.warning("retry.cleanup_failed", error=str(exc))
                else:
                    if removed:
                        log.info("retry.cleaned_up", removed=removed)
            await sleep_or_stop(self.clock, self.config.stats_interval_seconds, stopping)

    async def refresh_gauges(self) -> None:
        try:
            rows = await self.store.stats()
        except StoreError as exc:
            log.warning("retry.stats_failed", error=str(exc))
            return
        depth = dict.fromkeys(STATUSES, 0)
        oldest = 0.0
        for row in rows:
            depth[row.status] = depth.get(row.status, 0) + row.count
            if row.status == ItemStatus.PENDING and row.oldest_pending_age_seconds is not None:
                oldest = max(oldest, row.oldest_pending_age_seconds)
        for status, count in depth.items():
            self.metrics.retry_queue_depth.labels(status=status).set(count)
        self.metrics.retry_oldest_pending_age.set(oldest)
