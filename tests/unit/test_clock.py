"""FakeClock: deterministic sleeping, ordering, cancellation; rfc3339 formatting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from daz.clock import rfc3339
from daz.testing import FakeClock


async def test_advance_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    async with asyncio.TaskGroup() as group:
        for name, seconds in (("c", 3.0), ("a", 1.0), ("b", 2.0)):
            group.create_task(sleeper(name, seconds), name=f"test.{name}")
        await clock.advance(0)
        assert clock.sleepers == 3
        await clock.advance(1.5)
        assert woke == [("a", 1.0)]
        await clock.advance(10)
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.monotonic() == 11.5


async def test_sleeper_that_sleeps_again_within_the_span_is_woken() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            await clock.sleep(1)
            ticks.append(clock.monotonic())

    async with asyncio.TaskGroup() as group:
        group.create_task(ticker(), name="test.ticker")
        await clock.advance(5)
    assert ticks == [1, 2, 3, 4, 5]


async def test_cancelled_sleeper_is_not_counted() -> None:
    clock = FakeClock()
    async with asyncio.TaskGroup() as group:
        task = group.create_task(clock.sleep(10), name="test.sleep")
        await clock.advance(0)
        assert clock.sleepers == 1
        task.cancel()
        await asyncio.sleep(0)
        assert clock.sleepers == 0
        assert clock.next_deadline() is None


async def test_wall_clock_follows_monotonic() -> None:
    start = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    clock = FakeClock(start=100.0, wall_start=start)
    await clock.advance(90)
    assert clock.now() == start + timedelta(seconds=90)
    assert clock.now().tzinfo is not None


async def test_run_until_idle_respects_its_limit() -> None:
    clock = FakeClock()

    async def forever() -> None:
        while True:
            await clock.sleep(10)

    async with asyncio.TaskGroup() as group:
        task = group.create_task(forever(), name="test.forever")
        await clock.run_until_idle(limit=100)
        assert clock.monotonic() == 100
        task.cancel()


async def test_zero_and_negative_sleep_return_without_advancing() -> None:
    clock = FakeClock()
    await clock.sleep(0)
    await clock.sleep(-5)
    assert clock.monotonic() == 0


async def test_negative_advance_is_rejected() -> None:
    with pytest.raises(ValueError, match="backwards"):
        await FakeClock().advance(-1)


def test_rfc3339() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 678900, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(moment) == "2024-01-02T01:04:05.678Z"
