"""A minimal retry worker that follows the ``AttemptGate`` contract (docs/internal-contracts.md §4).

Used until/besides ``daz.retry.RetryQueue`` to exercise the gate against the real in-memory store:
claim due items; ask the gate; a deferral reschedules WITHOUT charging an attempt (``deferred_by`` the
policy's breaker); otherwise run the handler, report to the gate, and complete or charge the attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from daz.clock import Clock
from daz.errors import DazError
from daz.resilience.gate import BreakerGate
from daz.store.base import QueueItem
from daz.testing.memory_store import InMemoryStore


@dataclass(frozen=True)
class Policy:
    breaker: str | None = "database"
    retry_delay_seconds: float = 1.0


@dataclass
class WorkerStats:
    attempts: int = 0
    failed_attempts: int = 0
    deferrals: int = 0
    dead_letters: int = 0
    completed: int = 0
    deferred_by: dict[str, int] = field(default_factory=dict)


class HarnessWorker:
    def __init__(self, store: InMemoryStore, gate: BreakerGate,
                 handler: Callable[[QueueItem], Awaitable[None]], clock: Clock,
                 policy: Policy, *, poll_seconds: float = 0.5, batch: int = 50) -> None:
        self.store, self.gate, self.handler, self.clock, self.policy = store, gate, handler, clock, policy
        self.poll_seconds, self.batch = poll_seconds, batch
        self.stats = WorkerStats()

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            for item in await self.store.claim_due(self.batch, 60.0, "harness"):
                await self.attempt(item)
            await self.clock.sleep(self.poll_seconds)

    async def attempt(self, item: QueueItem) -> None:
        defer = self.gate.before_attempt(item, self.policy)
        if defer is not None:
            self.stats.deferrals += 1
            await self.store.reschedule(item.id, item.fence, self.clock.now() + timedelta(seconds=defer),
                                        None, count_attempt=False, deferred_by=self.policy.breaker)
            return
        self.stats.attempts += 1
        started = self.clock.monotonic()
        try:
            await self.handler(item)
        except DazError as exc:
            self.gate.record(item, self.policy, exc, self.clock.monotonic() - started)
            self.stats.failed_attempts += 1
            if item.attempt + 1 > item.max_retries:
                self.stats.dead_letters += 1
                await self.store.dead_letter(item.id, item.fence, str(exc))
            else:
                at = self.clock.now() + timedelta(seconds=self.policy.retry_delay_seconds)
                await self.store.reschedule(item.id, item.fence, at, str(exc))
            return
        self.gate.record(item, self.policy, None, self.clock.monotonic() - started)
        self.stats.completed += 1
        await self.store.complete(item.id, item.fence)
