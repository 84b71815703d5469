"""The async CircuitBreaker on FakeClock: windows, classification, probes, events and metrics."""

from __future__ import annotations

import asyncio
import random

import pytest

from daz.config import BreakerConfig
from daz.errors import CircuitOpen, DazError, SqlError
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.resilience.breaker import CallOutcome, CircuitBreaker
from daz.resilience.machine import BreakerState
from daz.testing import FakeClock

FAST = BreakerConfig(minimum_calls=4, window_size=10, failure_rate_threshold=0.5,
                     slow_call_rate_threshold=0.5, slow_call_duration_seconds=2.0,
                     break_seconds=10, break_multiplier=2,
                     max_break_seconds=60, break_jitter=0.0, half_open_permits=3)


def make(config: BreakerConfig = FAST, **kw: object) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker("db", config, clock=clock, rng=random.Random(7), **kw), clock  # type: ignore[arg-type]


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state through a call so mypy does not narrow it across awaits."""
    return breaker.state


class Down(DazError):
    retryable = True


async def fail() -> None:
    raise Down("dependency down")


async def ok() -> str:
    return "ok"


async def test_minimum_calls_rule_keeps_the_breaker_closed_until_enough_calls() -> None:
    breaker, _ = make()
    for _ in range(FAST.minimum_calls - 1):
        with pytest.raises(Down):
            await breaker.call(fail)
    assert state(breaker) is BreakerState.CLOSED, "3 of 3 failed, but fewer than minimum_calls"
    with pytest.raises(Down):
        await breaker.call(fail)
    assert state(breaker) is BreakerState.OPEN
    assert breaker.last_reason == "failure_rate"


async def test_failure_rate_below_threshold_does_not_open() -> None:
    breaker, _ = make()
    for i in range(10):
        if i % 3 == 2:
            with pytest.raises(Down):
                await breaker.call(fail)
        else:
            await breaker.call(ok)
    assert breaker.stats().failures == 3
    assert state(breaker) is BreakerState.CLOSED


async def test_slow_calls_open_the_breaker_with_their_own_reason() -> None:
    breaker, clock = make()

    async def slow() -> None:
        await clock.sleep(2.5)

    for _ in range(4):
        task = asyncio.create_task(breaker.call(slow))
        await clock.advance(2.5)
        await task
    assert breaker.stats().failures == 0
    assert state(breaker) is BreakerState.OPEN
    assert breaker.last_reason == "slow_call_rate"


async def test_while_open_calls_are_refused_at_once_with_retry_after() -> None:
    breaker, clock = make()
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.call(fail)
    reached = 0

    async def counted() -> None:
        nonlocal reached
        reached += 1

    await clock.advance(4)
    with pytest.raises(CircuitOpen) as info:
        await breaker.call(counted)
    assert reached == 0
    assert info.value.name == "db"
    assert info.value.retry_after == pytest.approx(6.0)
    assert breaker.retry_after() == pytest.approx(6.0)
    assert not breaker.allow()
    await clock.advance(6)
    assert breaker.allow()


async def test_half_open_admits_only_the_permitted_probes_among_concurrent_callers() -> None:
    breaker, clock = make()
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.call(fail)
    await clock.advance(10)
    release = asyncio.Event()
    reached = 0

    async def probe() -> None:
        nonlocal reached
        reached += 1
        await release.wait()

    tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(10)]
    await asyncio.sleep(0)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert reached == FAST.half_open_permits
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    refused = [r for r in results if isinstance(r, CircuitOpen)]
    assert len(refused) == 10 - FAST.half_open_permits
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.last_reason == "probes_succeeded"
    assert breaker.stats().calls == 0, "a close starts a fresh window"


async def test_one_failed_probe_reopens_with_a_longer_break() -> None:
    breaker, clock = make()
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.call(fail)
    await clock.advance(10)
    await breaker.call(ok)
    with pytest.raises(Down):
        await breaker.call(fail)
    assert state(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(20.0)
    assert breaker.machine.reopens == 1


async def test_non_retryable_errors_count_as_success_for_the_dependency() -> None:
    breaker, _ = make()
    for _ in range(10):
        with pytest.raises(SqlError):
            await breaker.call(_constraint_violation)
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.stats().failures == 0
    assert breaker.calls[CallOutcome.CALLER_ERROR] == 10


async def _constraint_violation() -> None:
    raise SqlError("duplicate key", sqlstate="23505", retryable=False)


async def test_cancellation_is_never_counted_and_hands_back_a_probe_permit() -> None:
    breaker, clock = make()
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.call(fail)
    await clock.advance(10)
    hang = asyncio.Event()
    tasks = [asyncio.create_task(breaker.call(hang.wait)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not breaker.allow()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow(), "cancelled probes give their permits back"
    assert breaker.calls[CallOutcome.FAILURE] == 4


async def test_async_with_counts_like_call_and_reraises() -> None:
    breaker, _ = make()
    for _ in range(4):
        with pytest.raises(Down):
            async with breaker:
                raise Down("x")
    assert state(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        async with breaker:
            pytest.fail("the body must not run while open")


async def test_late_results_from_before_opening_are_not_probes() -> None:
    breaker, clock = make()
    early = breaker.acquire()
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.call(fail)
    await clock.advance(10)
    probes = [breaker.acquire() for _ in range(3)]
    early.done(None)
    early.done(Down("twice"))
    assert breaker.machine.probes_ok == 0
    for permit in probes:
        permit.done(None)
    assert state(breaker) is BreakerState.CLOSED


async def test_untranslated_exceptions_count_as_failures() -> None:
    breaker, _ = make()

    async def boom() -> None:
        raise ConnectionResetError

    for _ in range(4):
        with pytest.raises(ConnectionResetError):
            await breaker.call(boom)
    assert state(breaker) is BreakerState.OPEN


async def test_every_transition_publishes_logs_and_sets_metrics() -> None:
    metrics = DazMetrics()
    clock = FakeClock()
    async with EventBus(clock=clock) as bus:
        breaker = CircuitBreaker("db", FAST, clock=clock, rng=random.Random(1), bus=bus, metrics=metrics)
        closed_calls: list[str] = []
        breaker.on_close(lambda b: closed_calls.append(b.name))
        async with bus.recording("breaker.*") as events:
            for _ in range(4):
                with pytest.raises(Down):
                    await breaker.call(fail)
            assert metrics.breaker_state.labels(name="db")._value.get() == 1
            await clock.advance(10)
            for _ in range(3):
                await breaker.call(ok)
            await bus.drain()
    changes = [(e.data["from"], e.data["to"], e.data["reason"]) for e in events]
    assert changes == [("closed", "open", "failure_rate"), ("open", "half_open", "break_elapsed"),
                       ("half_open", "closed", "probes_succeeded")]
    first = events[0].data
    assert first["failure_rate"] == 1.0
    assert first["retry_after"] == pytest.approx(10.0)
    assert set(first) == {"name", "from", "to", "reason", "failure_rate", "slow_rate", "retry_after"}
    assert closed_calls == ["db"]
    assert metrics.breaker_state.labels(name="db")._value.get() == 0
    assert metrics.breaker_transitions.labels(name="db", to="open")._value.get() == 1
    assert metrics.breaker_calls.labels(name="db", outcome="failure")._value.get() == 4
    assert metrics.breaker_calls.labels(name="db", outcome="success")._value.get() == 3


async def test_rejections_are_counted() -> None:
    metrics = DazMetrics()
    breaker, _ = make(metrics=metrics)
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.call(fail)
    for _ in range(5):
        assert breaker.try_acquire() is None
    assert metrics.breaker_rejections.labels(name="db")._value.get() == 5
    assert breaker.rejections == 5


async def test_time_window_forgets_old_failures() -> None:
    config = FAST.model_copy(update={"window_type": "time", "window_seconds": 10.0})
    breaker, clock = make(config)
    for _ in range(3):
        with pytest.raises(Down):
            await breaker.call(fail)
    await clock.advance(11)
    assert breaker.stats().calls == 0
    with pytest.raises(Down):
        await breaker.call(fail)
    assert state(breaker) is BreakerState.CLOSED


async def test_forced_open_refuses_and_disabled_admits_everything() -> None:
    breaker, _ = make()
    from daz.resilience.machine import Trigger

    breaker.operate(Trigger.FORCE_OPEN)
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)
    breaker.operate(Trigger.DISABLE)
    for _ in range(20):
        with pytest.raises(Down):
            await breaker.call(fail)
    assert state(breaker) is BreakerState.DISABLED
    breaker.operate(Trigger.RESET)
    assert state(breaker) is BreakerState.CLOSED
    assert breaker.calls[CallOutcome.FAILURE] == 0


async def test_nested_calls_through_the_same_breaker_count_once() -> None:
    breaker, _ = make()

    async def inner() -> None:
        raise Down("x")

    async def outer() -> None:
        async with breaker:
            await breaker.call(inner)

    for _ in range(3):
        with pytest.raises(Down):
            await breaker.call(outer)
    assert breaker.stats().calls == 3
    assert breaker.calls[CallOutcome.FAILURE] == 3


async def test_finished_admissions_do_not_cover_later_calls() -> None:
    breaker, _ = make()
    for _ in range(4):
        with pytest.raises(Down):
            await breaker.call(fail)
    assert state(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        await breaker.call(ok)  # no permit is held here: the earlier calls' permits were finished
