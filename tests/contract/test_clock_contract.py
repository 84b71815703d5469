"""The Clock contract, run against SystemClock and FakeClock: both must behave alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from daz.clock import Clock, SystemClock
from daz.testing import FakeClock

SHORT = 0.05


@dataclass
class Driver:
    clock: Clock
    # Lets ``seconds`` pass: really waiting for SystemClock, advancing for FakeClock.
    let_pass: Callable[[float], Awaitable[None]]


def _system() -> Driver:
    return Driver(SystemClock(), asyncio.sleep)


def _fake() -> Driver:
    clock = FakeClock()
    return Driver(clock, clock.advance)


@pytest.fixture(params=[_system, _fake], ids=["system", "fake"])
def driver(request: pytest.FixtureRequest) -> Driver:
    factory: Callable[[], Driver] = request.param
    return factory()


async def test_monotonic_never_goes_backwards(driver: Driver) -> None:
    readings = [driver.clock.monotonic()]
    for _ in range(5):
        await driver.let_pass(SHORT / 5)
        readings.append(driver.clock.monotonic())
    assert readings == sorted(readings)
    assert readings[-1] > readings[0]


async def test_now_is_timezone_aware_utc(driver: Driver) -> None:
    now = driver.clock.now()
    assert now.utcoffset() is not None
    assert now.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


async def test_sleep_lasts_at_least_its_duration(driver: Driver) -> None:
    start = driver.clock.monotonic()
    async with asyncio.TaskGroup() as group:
        task = group.create_task(driver.clock.sleep(SHORT), name="test.sleep")
        await driver.let_pass(SHORT / 2)
        assert not task.done()
        await driver.let_pass(SHORT * 2)
        await asyncio.sleep(0)
        assert task.done()
    assert driver.clock.monotonic() - start >= SHORT


async def test_sleep_is_cancellable(driver: Driver) -> None:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(driver.clock.sleep(3600), name="test.long_sleep")
        await driver.let_pass(0)
        task.cancel()
    assert task.cancelled()


async def test_non_positive_sleep_returns_at_once(driver: Driver) -> None:
    start = driver.clock.monotonic()
    async with asyncio.timeout(5):
        await driver.clock.sleep(0)
        await driver.clock.sleep(-1)
    assert driver.clock.monotonic() - start < 1.0


async def test_wall_and_monotonic_move_together(driver: Driver) -> None:
    mono, wall = driver.clock.monotonic(), driver.clock.now()
    await driver.let_pass(SHORT)
    d_mono = driver.clock.monotonic() - mono
    d_wall = (driver.clock.now() - wall).total_seconds()
    assert d_mono >= SHORT
    assert abs(d_wall - d_mono) < 0.5
