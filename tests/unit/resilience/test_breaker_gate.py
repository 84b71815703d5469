"""BreakerGate: deferral without charge, budget deferral, permits settled, bounded release."""

from __future__ import annotations

import asyncio
import contextvars
import random
from dataclasses import dataclass

import pytest
from resilience_harness import HarnessWorker, Policy

from daz.config import BreakerConfig, RetryBudgetConfig
from daz.errors import CircuitOpen, DazError
from daz.metrics import DazMetrics
from daz.resilience.gate import MIN_DEFER_SECONDS, BreakerGate
from daz.resilience.machine import BreakerState, Trigger
from daz.resilience.registry import BreakerRegistry
from daz.retry.budget import RetryBudget
from daz.store.base import ItemStatus, NewItem, QueueItem
from daz.testing import FakeClock
from daz.testing.memory_store import InMemoryStore

CONFIG = BreakerConfig(minimum_calls=2, window_size=4, break_seconds=10, break_jitter=0.0,
                       half_open_permits=1)


@dataclass(frozen=True)
class Item:
    id: int
    operation_type: str = "sql_operation"


@dataclass(frozen=True)
class TimedItem:
    id: int
    operation_type: str = "sql_operation"
    timeout_seconds: float = 30.0


class Down(DazError):
    retryable = True


def attempt(gate: BreakerGate, item: Item | TimedItem, policy: Policy) -> float | None:
    """``before_attempt`` as a worker runs it: each attempt in its own task (its own context)."""
    return contextvars.copy_context().run(gate.before_attempt, item, policy)


def setup(budget: RetryBudget | None = None) -> tuple[BreakerGate, BreakerRegistry, FakeClock]:
    clock = FakeClock()
    registry = BreakerRegistry({"database": CONFIG}, None, None, clock, random.Random(3))
    return BreakerGate(registry, clock=clock, budget=budget), registry, clock


def test_closed_breaker_lets_attempts_through_and_record_settles_the_permit() -> None:
    gate, registry, _ = setup()
    policy = Policy("database")
    for i in range(2):
        assert gate.before_attempt(Item(i), policy) is None
        gate.record(Item(i), policy, Down("x"), 0.01)
    assert registry.get("database").state is BreakerState.OPEN
    delay = gate.before_attempt(Item(9), policy)
    assert delay == pytest.approx(10.0)
    assert gate.deferred_by_breaker == 1


async def test_half_open_probe_is_one_item_and_its_success_closes_the_breaker() -> None:
    gate, registry, clock = setup()
    registry.get("database").operate(Trigger.FORCE_OPEN)
    registry.get("database").operate(Trigger.FORCE_CLOSE)
    policy = Policy("database")
    for i in range(2):
        attempt(gate, Item(i), policy)
        gate.record(Item(i), policy, Down("x"), 0.01)
    await clock.advance(10)
    assert attempt(gate, Item(1), policy) is None
    assert attempt(gate, Item(2), policy) is not None, "only one probe permit"
    gate.record(Item(1), policy, None, 0.01)
    assert registry.get("database").state is BreakerState.CLOSED


async def test_a_second_before_attempt_for_the_same_item_hands_back_the_first_permit() -> None:
    gate, registry, clock = setup()
    policy = Policy("database")
    for i in range(2):
        attempt(gate, Item(i), policy)
        gate.record(Item(i), policy, Down("x"), 0.01)
    await clock.advance(10)
    assert attempt(gate, Item(1), policy) is None
    assert registry.get("database").state is BreakerState.HALF_OPEN
    assert attempt(gate, Item(2), policy) is not None, "the single probe permit is taken"
    assert attempt(gate, Item(1), policy) is None, "the stale permit was handed back first"


def test_no_breaker_and_no_budget_never_defers() -> None:
    gate, _, _ = setup()
    assert all(gate.before_attempt(Item(i), Policy(None)) is None for i in range(100))


async def test_budget_refusal_defers_and_returns_the_breaker_permit() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    budget = RetryBudget(RetryBudgetConfig(ratio=0.0, min_per_second=0.2, window_seconds=10), clock, metrics)
    registry = BreakerRegistry({"database": CONFIG.model_copy(update={"half_open_permits": 1})}, None, None,
                               clock, random.Random(3))
    gate = BreakerGate(registry, clock=clock, budget=budget)
    policy = Policy("database")
    assert gate.before_attempt(Item(1), policy) is None
    assert gate.before_attempt(Item(2), policy) is None
    delay = gate.before_attempt(Item(3), policy)
    assert delay is not None
    assert delay >= MIN_DEFER_SECONDS
    assert gate.deferred_by_budget == 1
    assert metrics.retry_budget_exhausted.labels(dependency="database")._value.get() == 1


async def test_retry_budget_with_the_dependency_down_bounds_retries_and_keeps_every_item() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    metrics = DazMetrics()
    config = RetryBudgetConfig(ratio=0.2, min_per_second=1.0, window_seconds=10.0)
    budget = RetryBudget(config, clock, metrics)
    registry = BreakerRegistry({}, None, metrics, clock, random.Random(3))
    gate = BreakerGate(registry, clock=clock, budget=budget, store=store, metrics=metrics)
    policy = Policy(breaker=None, retry_delay_seconds=0.5)

    async def handler(item: QueueItem) -> None:
        raise Down("dependency down")

    worker = HarnessWorker(store, gate, handler, clock, policy, poll_seconds=0.25, batch=100)
    items = 500
    await store.schedule([NewItem("sql_operation", {"n": i}, max_retries=10_000) for i in range(items)])
    seconds, base_per_second = 60, 20
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(worker.run(stopping), name="harness.worker")
        for _ in range(seconds * 10):
            budget.record_base("sql_operation", base_per_second // 10)
            await clock.advance(0.1)
        stopping.set()
        await clock.advance(1)

    base = seconds * base_per_second
    bound = config.ratio * base + config.min_per_second * config.window_seconds * (seconds / 10 + 1)
    rows = await store.list(limit=items + 1)
    print(f"\nbudget: base={base} retries={worker.stats.attempts} bound={bound:.0f} "
          f"deferred={worker.stats.deferrals} items={len(rows)} "
          f"pending={sum(r.status == ItemStatus.PENDING for r in rows)}")
    assert worker.stats.attempts <= bound
    assert worker.stats.attempts >= config.ratio * base, "the budget still lets retries through"
    assert worker.stats.deferrals > 0
    exhausted = metrics.retry_budget_exhausted.labels(dependency="sql_operation")._value.get()
    assert exhausted == worker.stats.deferrals
    assert len(rows) == items
    assert all(r.status == ItemStatus.PENDING for r in rows), "deferred, never dropped"
    assert sum(r.attempt for r in rows) == worker.stats.attempts, "deferrals charge nothing"
    assert worker.stats.dead_letters == 0


class FlakyStore(InMemoryStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.calls: list[tuple[float, int]] = []
        self.fail_next = 1

    async def release_deferred(self, breaker_name: str, limit: int) -> int:
        if self.fail_next:
            self.fail_next -= 1
            from daz.errors import StoreUnavailable

            raise StoreUnavailable("blip")
        released = await super().release_deferred(breaker_name, limit)
        self.calls.append((self.clock.monotonic(), released))
        return released


async def test_release_after_close_is_rate_limited_and_survives_a_store_blip() -> None:
    clock = FakeClock()
    store = FlakyStore(clock)
    registry = BreakerRegistry({"database": CONFIG}, None, None, clock, random.Random(3))
    wakes: list[float] = []
    gate = BreakerGate(registry, clock=clock, store=store, release_per_second=10.0,
                       on_release=lambda: wakes.append(clock.monotonic()))
    policy = Policy("database")
    ids = await store.schedule([NewItem("sql_operation", {}) for _ in range(35)])
    for i in range(2):
        gate.before_attempt(Item(i), policy)
        gate.record(Item(i), policy, Down("x"), 0.01)
    far = clock.now().replace(year=2030)
    for item in await store.claim_due(100, 30, "t"):
        assert gate.before_attempt(item, policy) is not None
        await store.reschedule(item.id, item.fence, far, None, count_attempt=False, deferred_by="database")
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(gate.run(stopping), name="gate")
        await clock.advance(0)
        registry.force_close("database")
        await clock.advance(10)
        stopping.set()
        await clock.advance(1)
    rows = [await store.get(i) for i in ids]
    assert all(r.deferred_by is None for r in rows)
    assert sum(n for _, n in store.calls) == 35 == gate.released
    times = [t for t, n in store.calls if n]
    assert times[-1] - times[0] >= (35 / 10) - 1, f"released too fast: {store.calls}"
    assert len(wakes) == len(times)


async def test_the_handlers_own_calls_through_the_breaker_are_covered_not_counted_twice() -> None:
    gate, registry, _ = setup()
    breaker = registry.get("database")
    policy = Policy("database")
    reached = 0

    async def query() -> None:
        nonlocal reached
        reached += 1

    async def one_attempt(item: Item) -> None:
        assert gate.before_attempt(item, policy) is None
        await breaker.call(query)  # what the SQL service does inside the queue's handler
        gate.record(item, policy, None, 0.01)

    for i in range(3):
        await asyncio.create_task(one_attempt(Item(i)))
    assert reached == 3
    assert breaker.stats().calls == 3, "one window entry per attempt, not two"


async def test_a_nested_circuit_open_is_not_a_dependency_failure() -> None:
    gate, registry, _ = setup()
    policy = Policy("database")
    for i in range(10):
        assert attempt(gate, Item(i), policy) is None
        gate.record(Item(i), policy, CircuitOpen("other", 5.0), 0.0)
    assert registry.get("database").state is BreakerState.CLOSED
    assert registry.get("database").stats().calls == 0


async def test_a_permit_left_unsettled_by_its_task_is_handed_back_at_its_next_attempt() -> None:
    gate, registry, clock = setup()
    policy = Policy("database")
    for i in range(2):
        attempt(gate, Item(i), policy)
        gate.record(Item(i), policy, Down("x"), 0.01)
    await clock.advance(10)

    async def worker_task() -> list[float | None]:
        first = gate.before_attempt(Item(1), policy)  # its attempt is then cancelled: no record()
        second = gate.before_attempt(Item(2), policy)  # the same task's next attempt
        return [first, second]

    assert await asyncio.create_task(worker_task()) == [None, None]
    assert registry.get("database").state is BreakerState.HALF_OPEN


async def test_a_probe_permit_that_never_reports_expires_after_its_timeout() -> None:
    gate, _, clock = setup()
    policy = Policy("database")
    for i in range(2):
        attempt(gate, Item(i), policy)
        gate.record(Item(i), policy, Down("x"), 0.01)
    await clock.advance(10)
    assert attempt(gate, TimedItem(1, timeout_seconds=30), policy) is None
    assert attempt(gate, Item(2), policy) is not None
    await clock.advance(34)
    assert attempt(gate, Item(2), policy) is not None, "not before timeout + grace"
    await clock.advance(2)
    assert attempt(gate, Item(2), policy) is None, "the lost probe's permit was handed back"


async def test_first_attempts_through_a_breaker_are_the_budgets_base_traffic_retries_are_not() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(ratio=0.5, min_per_second=0.0, window_seconds=10), clock)
    registry = BreakerRegistry({"database": CONFIG}, None, None, clock, random.Random(3))
    registry.get("database")  # created before the gate: hooked too
    gate = BreakerGate(registry, clock=clock, budget=budget)
    for _ in range(8):
        await registry.get("database").call(_noop)
    await registry.get("http:example.org").call(_noop)
    granted = [attempt(gate, Item(i), Policy("database")) is None for i in range(10)]
    assert granted == [True] * 4 + [False] * 6, "0.5 x 8 first attempts; the gate's own admissions add none"
    assert {r["dependency"]: r["base"] for r in budget.snapshot()} == {"database": 8, "http:example.org": 1}


async def _noop() -> None:
    return None


def budget_gate(floor: float = 0.3) -> tuple[BreakerGate, RetryBudget, FakeClock]:
    """A gate whose budget allows ``floor · 10`` retries per 10 s window and has no base traffic."""
    clock = FakeClock()
    budget = RetryBudget(RetryBudgetConfig(ratio=0.0, min_per_second=floor, window_seconds=10), clock)
    registry = BreakerRegistry({}, None, None, clock, random.Random(3))
    return BreakerGate(registry, clock=clock, budget=budget), budget, clock


def test_a_successful_attempt_gives_its_budget_token_back_a_failed_one_does_not() -> None:
    gate, budget, _ = budget_gate()
    policy = Policy(None)
    for i in range(3):
        assert attempt(gate, Item(i), policy) is None
    assert attempt(gate, Item(3), policy) is not None, "three in flight: the allowance is used"
    gate.record(Item(0), policy, Down("down"), 0.01)
    assert attempt(gate, Item(3), policy) is not None, "a failed retry keeps its token"
    gate.record(Item(1), policy, None, 0.01)
    assert attempt(gate, Item(3), policy) is None, "a successful retry gave its token back"
    (row,) = budget.snapshot()
    assert (row["granted_total"], row["refunded_total"], row["retries"]) == (4, 1, 3)


async def test_an_attempt_that_never_reports_is_settled_as_failed_after_a_window() -> None:
    gate, budget, clock = budget_gate(floor=0.1)
    policy = Policy(None)
    assert attempt(gate, Item(1), policy) is None  # never recorded: the worker was cancelled
    assert budget.retry_after("sql_operation") == pytest.approx(1.0), "in flight: a token may come soon"
    await clock.advance(10.5)
    assert attempt(gate, Item(2), policy) is None  # the first grant left the window; it is settled now
    gate.record(Item(1), policy, None, 0.01)  # a late report refunds nothing
    gate.record(Item(2), policy, Down("down"), 0.01)
    (row,) = budget.snapshot()
    assert (row["refunded_total"], row["retries"]) == (0, 1)
    # nothing in flight any more: the next token is the failed retry's, when its bucket expires
    assert budget.retry_after("sql_operation") == pytest.approx(20.0 - 10.5)
