"""The real ``RetryQueue`` behind a ``BreakerGate`` and a ``RetryBudget`` through a 60 s outage."""

from __future__ import annotations

import asyncio
import random

from daz.config import BreakerConfig, RetryBudgetConfig, RetryConfig, RetryPolicyConfig
from daz.errors import CircuitOpen, DazError
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.resilience.gate import BreakerGate
from daz.resilience.machine import BreakerState
from daz.resilience.registry import BreakerRegistry
from daz.retry.budget import RetryBudget
from daz.retry.queue import RetryQueue
from daz.store.base import ItemStatus, NewItem, QueueItem
from daz.testing import FakeClock
from daz.testing.memory_store import InMemoryStore

OUTAGE_SECONDS = 60.0
RATE_PER_SECOND = 200
STEP_SECONDS = 0.05
RUN_SECONDS = 110.0
MAX_RETRIES = 5
ITEMS = 300
BREAKER = BreakerConfig(window_size=100, minimum_calls=20, break_seconds=5, break_multiplier=2,
                        max_break_seconds=30, break_jitter=0.1, half_open_permits=3)


class Down(DazError):
    retryable = True


async def test_queue_items_deferred_through_an_outage_all_complete_within_max_retries() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    store = InMemoryStore(clock)
    entries: list[tuple[float, BreakerState, str]] = []
    async with EventBus(clock=clock, metrics=metrics) as bus:
        registry = BreakerRegistry({"database": BREAKER}, bus, metrics, clock, random.Random(11))
        breaker = registry.get("database")
        budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_per_second=5.0), clock, metrics)
        config = RetryConfig(
            poll_interval_seconds=1.0, worker_count=2, batch_size=50, lease_seconds=30,
            heartbeat_interval_seconds=10, stats_interval_seconds=60,
            retry_policies={"sql_operation": RetryPolicyConfig(
                max_retries=MAX_RETRIES, initial_delay_seconds=1, max_delay_seconds=10, jitter=0.1,
                breaker="database")},
        )
        queue = RetryQueue(store, config, bus, metrics, clock, random.Random(3), owner_prefix="test")
        gate = BreakerGate(registry, clock=clock, budget=budget, store=store, metrics=metrics,
                           release_per_second=50.0, on_release=queue.wake)
        queue.set_gate(gate)

        async def dependency(source: str) -> None:
            entries.append((clock.monotonic(), breaker.state, source))
            await clock.sleep(0.02)
            if clock.monotonic() < OUTAGE_SECONDS:
                raise Down("database down")

        async def handler(item: QueueItem) -> None:
            await dependency("queue")

        queue.register("sql_operation", handler)
        refused = 0

        async def in_process_call() -> None:
            nonlocal refused
            try:
                await breaker.call(lambda: dependency("traffic"))
            except CircuitOpen:
                refused += 1
            except Down:
                pass

        await queue.schedule(*[NewItem("sql_operation", {"n": i}) for i in range(ITEMS)])
        async with bus.recording("breaker.state_changed") as changes:
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(queue.run(stopping), name="retry")
                group.create_task(gate.run(stopping), name="gate")
                for _ in range(round(RUN_SECONDS / STEP_SECONDS)):
                    for _ in range(round(RATE_PER_SECOND * STEP_SECONDS)):
                        group.create_task(in_process_call(), name="traffic")
                    await clock.advance(STEP_SECONDS)
                stopping.set()
                queue.wake()
                await clock.advance(35)
            await bus.drain()

    opened = [c for c in changes if c.data["to"] == "open"]
    closes = [c for c in changes if c.data["to"] == "closed"]
    first_open = (opened[0].timestamp - clock.now()).total_seconds() + clock.monotonic()
    closed_at = (closes[-1].timestamp - clock.now()).total_seconds() + clock.monotonic()
    while_open = [e for e in entries if first_open <= e[0] < closed_at]
    rows = await store.list(limit=ITEMS + 1)
    charged = sum(r.attempt for r in rows)
    probes_only = all(e[1] is BreakerState.HALF_OPEN for e in while_open)
    print(f"\nqueue+breaker: opened {first_open:.2f}s closed {closed_at:.2f}s; reached the dependency "
          f"while open: {len(while_open)} (all half-open probes: {probes_only}, "
          f"from queue {sum(e[2] == 'queue' for e in while_open)}); refused in-process {refused}; "
          f"queue stats {queue.stats}; attempts charged {charged}; max attempt "
          f"{max(r.attempt for r in rows)}; gate deferred by breaker {gate.deferred_by_breaker}, "
          f"by budget {gate.deferred_by_budget}, released {gate.released}")
    assert len(closes) == 1, "no flapping after recovery"
    assert probes_only
    assert len(while_open) <= BREAKER.half_open_permits * sum(c.data["to"] == "half_open" for c in changes)
    assert OUTAGE_SECONDS <= closed_at <= OUTAGE_SECONDS + 33 + 1
    assert [r.status for r in rows] == [ItemStatus.COMPLETED] * ITEMS, "all deferred items complete"
    assert max(r.attempt for r in rows) <= MAX_RETRIES
    assert gate.deferred_by_breaker > ITEMS
    deferred = metrics.retry_deferred_by_breaker.labels(breaker="database")._value.get()
    assert deferred == gate.deferred_by_breaker
