"""After an outage the retry budget must let the backlog drain promptly, never stall it for minutes.

The real ``RetryQueue`` behind a ``BreakerGate`` and a ``RetryBudget`` with the product defaults: a
backlog of queued database writes, the database down for 20 s while in-process traffic keeps calling
it through the breaker, then healthy again. Measured: how long after the recovery the last item
completes, and how far the budget ever pushed an item out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

from daz.config import BreakerConfig, RetryBudgetConfig, RetryConfig, RetryPolicyConfig
from daz.errors import CircuitOpen, DazError
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.resilience.gate import BreakerGate
from daz.resilience.registry import BreakerRegistry
from daz.retry.budget import RetryBudget
from daz.retry.queue import RetryQueue
from daz.store.base import ItemStatus, NewItem, QueueItem
from daz.testing import FakeClock
from daz.testing.memory_store import InMemoryStore

ITEMS = 2000
OUTAGE_SECONDS = 20.0
BASE_PER_SECOND = 50
STEP_SECONDS = 0.1
MAX_RUN_SECONDS = 400.0
# The database breaker of the chaos writer (scenario 3): short breaks, so it closes soon after recovery.
BREAKER = BreakerConfig(window_size=20, minimum_calls=10, break_seconds=1, max_break_seconds=3)


class Down(DazError):
    retryable = True


@dataclass
class Run:
    drained_at: float | None = None
    delays: list[float] = field(default_factory=list)
    attempts_while_down: int = 0
    gate: BreakerGate | None = None
    budget: RetryBudget | None = None


async def run_outage(budget_config: RetryBudgetConfig) -> Run:
    clock, metrics = FakeClock(), DazMetrics()
    store = InMemoryStore(clock)
    result = Run()
    async with EventBus(clock=clock, metrics=metrics) as bus:
        registry = BreakerRegistry({"database": BREAKER}, bus, metrics, clock, random.Random(5))
        breaker = registry.get("database")
        budget = RetryBudget(budget_config, clock, metrics)
        config = RetryConfig(retry_policies={"sql_operation": RetryPolicyConfig(
            max_retries=50, initial_delay_seconds=1, max_delay_seconds=10, breaker="database")})
        queue = RetryQueue(store, config, bus, metrics, clock, random.Random(3), owner_prefix="test")
        gate = BreakerGate(registry, clock=clock, budget=budget, store=store, metrics=metrics,
                           release_per_second=config.breaker_release_per_second, on_release=queue.wake)
        queue.set_gate(gate)
        result.gate, result.budget = gate, budget

        async def database() -> None:
            await clock.sleep(0.005)
            if clock.monotonic() < OUTAGE_SECONDS:
                raise Down("database down")

        async def handler(item: QueueItem) -> None:
            if clock.monotonic() < OUTAGE_SECONDS:
                result.attempts_while_down += 1
            await database()

        async def in_process_call() -> None:
            with contextlib.suppress(CircuitOpen, Down):
                await breaker.call(database)

        queue.register("sql_operation", handler)
        await queue.schedule(*[NewItem("sql_operation", {"n": i}) for i in range(ITEMS)])
        async with bus.recording("retry.deferred") as deferred:
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(queue.run(stopping), name="retry")
                group.create_task(gate.run(stopping), name="gate")
                per_step = round(BASE_PER_SECOND * STEP_SECONDS)
                for step in range(round(MAX_RUN_SECONDS / STEP_SECONDS)):
                    for _ in range(per_step):
                        group.create_task(in_process_call(), name="traffic")
                    await clock.advance(STEP_SECONDS)
                    if step % 10 == 9 and await completed(store) == ITEMS:
                        result.drained_at = clock.monotonic()
                        break
                stopping.set()
                queue.wake()
                await clock.advance(60)
            await bus.drain()
        # Breaker deferrals are at most its longest break (3 s) here, so the longest of all is the budget's.
        result.delays = [float(e.data["delay"]) for e in deferred]
    return result


async def completed(store: InMemoryStore) -> int:
    return sum(r.count for r in await store.stats() if r.status == ItemStatus.COMPLETED)


async def test_backlog_drains_promptly_after_recovery_with_the_default_budget() -> None:
    window = RetryBudgetConfig().window_seconds
    unbudgeted = await run_outage(RetryBudgetConfig(enabled=False))
    run = await run_outage(RetryBudgetConfig())
    gate, budget = run.gate, run.budget
    assert gate is not None
    assert budget is not None
    assert unbudgeted.drained_at is not None
    reference = unbudgeted.drained_at - OUTAGE_SECONDS
    drain = None if run.drained_at is None else run.drained_at - OUTAGE_SECONDS
    print(f"\nbudget recovery: {ITEMS} items, drained {drain if drain is None else round(drain, 1)} s after "
          f"recovery ({reference:.1f} s without a budget); longest deferral "
          f"{max(run.delays, default=0):.1f} s; deferred by breaker {gate.deferred_by_breaker}, "
          f"by budget {gate.deferred_by_budget}; attempts while down {run.attempts_while_down}; "
          f"budget {budget.snapshot()}")
    assert drain is not None, f"backlog not drained {MAX_RUN_SECONDS - OUTAGE_SECONDS:.0f} s after recovery"
    # The budget may hold a healthy dependency's backlog back by a window at most, never minutes.
    assert drain <= reference + window
    assert max(run.delays, default=0) <= window, "deferrals must not grow"
    # Retries that reached the dependency while it was down stayed within the budget's floor.
    assert run.attempts_while_down <= 0.2 * BASE_PER_SECOND * OUTAGE_SECONDS + 1.0 * window * 3
