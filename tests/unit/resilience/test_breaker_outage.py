"""The must-show scenario: a dependency down for 60 simulated seconds under 200 calls/s.

In-process traffic goes through the breaker; queued retries go through the ``BreakerGate``. While the
breaker is open only half-open probes reach the dependency; after recovery it closes, the deferred
queue items are released at a bounded rate and all complete, and no item is charged more attempts
than its max_retries.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from resilience_harness import HarnessWorker, Policy

from daz.config import BreakerConfig
from daz.errors import CircuitOpen, DazError
from daz.events.bus import Event, EventBus
from daz.metrics import DazMetrics
from daz.resilience.gate import BreakerGate
from daz.resilience.machine import BreakerState
from daz.resilience.registry import BreakerRegistry
from daz.store.base import ItemStatus, NewItem, QueueItem
from daz.testing import FakeClock
from daz.testing.memory_store import InMemoryStore

OUTAGE_SECONDS = 60.0
RATE_PER_SECOND = 200
STEP_SECONDS = 0.05
RUN_SECONDS = 100.0
LATENCY_SECONDS = 0.02
RELEASE_PER_SECOND = 40.0
CONFIG = BreakerConfig(window_size=100, minimum_calls=20, failure_rate_threshold=0.5, break_seconds=5,
                       break_multiplier=2, max_break_seconds=30, break_jitter=0.1, half_open_permits=3)


class Down(DazError):
    retryable = True


@dataclass
class Dependency:
    clock: FakeClock
    entries: list[tuple[float, BreakerState]] = field(default_factory=list)
    states: list[BreakerState] = field(default_factory=list)

    async def __call__(self) -> None:
        self.entries.append((self.clock.monotonic(), self.states[-1]))
        await self.clock.sleep(LATENCY_SECONDS)
        if self.clock.monotonic() < OUTAGE_SECONDS:
            raise Down("dependency down")


class ReleaseSpy(InMemoryStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.releases: list[tuple[float, int]] = []

    async def release_deferred(self, breaker_name: str, limit: int) -> int:
        released = await super().release_deferred(breaker_name, limit)
        self.releases.append((self.clock.monotonic(), released))
        return released


async def test_sixty_second_outage_at_200_calls_per_second() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    store = ReleaseSpy(clock)
    async with EventBus(clock=clock) as bus:
        registry = BreakerRegistry({"database": CONFIG}, bus, metrics, clock, random.Random(5))
        breaker = registry.get("database")
        gate = BreakerGate(registry, clock=clock, store=store, release_per_second=RELEASE_PER_SECOND,
                           metrics=metrics)
        dependency = Dependency(clock)

        async def via_breaker() -> None:
            dependency.states.append(breaker.state)
            await dependency()

        async def handler(item: QueueItem) -> None:
            await via_breaker()

        worker = HarnessWorker(store, gate, handler, clock, Policy(breaker="database"))
        await store.schedule([NewItem("sql_operation", {"n": i}, max_retries=5) for i in range(300)])
        outcomes = {"ok": 0, "failed": 0, "refused": 0}

        async def one_call() -> None:
            try:
                await breaker.call(via_breaker)
            except CircuitOpen:
                outcomes["refused"] += 1
            except Down:
                outcomes["failed"] += 1
            else:
                outcomes["ok"] += 1

        async with bus.recording("breaker.state_changed") as changes:
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(worker.run(stopping), name="harness.worker")
                group.create_task(gate.run(stopping), name="gate.release")
                for _ in range(round(RUN_SECONDS / STEP_SECONDS)):
                    for _ in range(round(RATE_PER_SECOND * STEP_SECONDS)):
                        group.create_task(one_call(), name="traffic.call")
                    await clock.advance(STEP_SECONDS)
                stopping.set()
                await clock.advance(1.0)
            await bus.drain()

    def at(e: Event) -> float:
        return round((e.timestamp - clock.now()).total_seconds() + clock.monotonic(), 2)

    transitions = [(at(e), e.data["from"], e.data["to"], e.data["reason"]) for e in changes]
    first_open = next(t for t, _, to, _ in transitions if to == "open")
    closed_at = next(t for t, src, to, _ in transitions if to == "closed" and src == "half_open")
    half_opens = sum(1 for _, _, to, _ in transitions if to == "half_open")
    reached_while_open = [(t, s) for t, s in dependency.entries if first_open <= t < closed_at]
    probes = [e for e in reached_while_open if e[1] is BreakerState.HALF_OPEN]
    without_breaker = RATE_PER_SECOND * (closed_at - first_open)
    print(f"\noutage: opened at {first_open}s, closed at {closed_at}s, half-open episodes={half_opens}, "
          f"calls reaching the dependency while open={len(reached_while_open)} (probes={len(probes)}), "
          f"refused={outcomes['refused']}, would have been ~{without_breaker:.0f} without a breaker")
    print(f"transitions: {transitions}")

    assert first_open < 1.0, "20 failures at 200/s open the breaker within a fraction of a second"
    assert reached_while_open == probes, "while open, only half-open probes may reach the dependency"
    assert 1 <= len(probes) <= CONFIG.half_open_permits * half_opens
    assert OUTAGE_SECONDS <= closed_at <= OUTAGE_SECONDS + CONFIG.max_break_seconds * 1.1 + 1
    assert breaker.state is BreakerState.CLOSED
    assert [t for t in transitions if t[0] > closed_at] == []
    assert outcomes["refused"] > 0.9 * RATE_PER_SECOND * (closed_at - first_open) - len(probes)

    items = await store.list(limit=1000)
    attempts = sum(item.attempt for item in items)
    print(f"queue: {len(items)} items, worker attempts={worker.stats.attempts} "
          f"(failed {worker.stats.failed_attempts}), deferrals without charge={worker.stats.deferrals}, "
          f"attempts charged={attempts}, released after close={gate.released}, "
          f"max attempt on an item={max(i.attempt for i in items)}")
    assert all(item.status == ItemStatus.COMPLETED for item in items), "every deferred item completes"
    assert all(item.attempt <= item.max_retries for item in items)
    assert worker.stats.dead_letters == 0
    assert attempts == worker.stats.failed_attempts, "only real failed attempts are charged"
    assert worker.stats.deferrals > len(items), "items were deferred (repeatedly) while open"
    assert gate.released > 0
    assert metrics.retry_deferred_by_breaker.labels(breaker="database")._value.get() == worker.stats.deferrals

    after_close = [(t, n) for t, n in store.releases if t >= closed_at and n]
    for start, _ in after_close:
        in_one_second = sum(n for t, n in after_close if start <= t < start + 1.0)
        assert in_one_second <= RELEASE_PER_SECOND + gate._batch, "released at a bounded rate"
