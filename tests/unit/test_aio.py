"""daz.aio: the waiting and racing helpers, driven by FakeClock (no real sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from daz.aio import race, sleep_or_stop, wait_any, wait_for
from daz.testing import FakeClock


class Probe:
    """A contender that records whether it was cancelled and that its cleanup ran."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False
        self.cleaned_up = False

    async def forever(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits must finish before race() returns
            self.cleaned_up = True


# race ------------------------------------------------------------------------------------------

async def test_race_returns_the_first_finisher_and_cancels_the_rest_before_returning() -> None:
    clock = FakeClock()
    loser = Probe()
    task = asyncio.create_task(
        race({"slow": loser.forever, "fast": lambda: _value_after(clock, 2, "hello")}, label="t"))
    await clock.advance(2)
    assert await task == ("fast", "hello")
    assert loser.cancelled
    assert loser.cleaned_up  # nothing outlives the wait
    assert clock.sleepers == 0


async def test_race_reraises_the_winners_error_unwrapped() -> None:
    loser = Probe()

    async def boom() -> None:
        await loser.started.wait()
        raise KeyError("bad")

    with pytest.raises(KeyError, match="bad"):
        await race({"boom": boom, "other": loser.forever})
    assert loser.cancelled


async def test_race_names_its_tasks_after_the_label() -> None:
    seen: list[str] = []

    async def who() -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append(task.get_name())

    await race({"me": who}, label="room.lobby.backoff")
    assert seen == ["room.lobby.backoff.me"]


async def test_cancelling_the_caller_cancels_every_contender() -> None:
    a, b = Probe(), Probe()
    task = asyncio.create_task(race({"a": a.forever, "b": b.forever}))
    await a.started.wait()
    await b.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.cancelled
    assert b.cancelled
    assert a.cleaned_up
    assert b.cleaned_up


async def test_race_without_contenders_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one contender"):
        await race({}, label="empty")


# wait_for --------------------------------------------------------------------------------------

async def test_wait_for_times_out_on_the_injected_clock() -> None:
    clock = FakeClock()
    work = Probe()
    task = asyncio.create_task(wait_for(clock, 3, work.forever, label="session.join"))
    await clock.advance(2.9)
    assert not task.done()
    await clock.advance(0.1)
    with pytest.raises(TimeoutError, match=r"session.join: no result within 3s"):
        await task
    assert work.cancelled


async def test_wait_for_returns_the_result_and_stops_the_timer() -> None:
    clock = FakeClock()
    task = asyncio.create_task(wait_for(clock, 10, lambda: _value_after(clock, 1, 42), label="t"))
    await clock.advance(1)
    assert await task == 42
    assert clock.sleepers == 0


async def test_wait_for_with_shield_leaves_the_future_alive_after_a_timeout() -> None:
    clock = FakeClock()
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(wait_for(clock, 1, lambda: asyncio.shield(reply), label="echo"))
    await clock.advance(1)
    with pytest.raises(TimeoutError):
        await task
    assert not reply.cancelled()  # a late reply can still be matched
    reply.set_result("late")


# sleep_or_stop ---------------------------------------------------------------------------------

async def test_sleep_or_stop_sleeps_the_full_time_when_not_stopped() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    task = asyncio.create_task(sleep_or_stop(clock, 5, stopping))
    await clock.advance(4.9)
    assert not task.done()
    await clock.advance(0.1)
    assert await task is False
    assert clock.sleepers == 0


async def test_sleep_or_stop_wakes_at_once_when_stopping_is_set() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    task = asyncio.create_task(sleep_or_stop(clock, 5, stopping))
    await clock.advance(1)
    stopping.set()
    assert await task is True
    assert clock.sleepers == 0  # the sleep was cancelled, not left parked on the clock
    assert clock.monotonic() == 1


async def test_sleep_or_stop_returns_without_sleeping_when_already_stopping() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    stopping.set()
    assert await sleep_or_stop(clock, 5, stopping) is True
    assert clock.sleepers == 0


async def test_sleep_or_stop_zero_seconds_is_a_scheduling_point() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    other_ran = asyncio.Event()

    async def other() -> None:
        other_ran.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(other())
        assert await sleep_or_stop(clock, 0, stopping) is False
        assert other_ran.is_set()


# wait_any --------------------------------------------------------------------------------------

async def test_wait_any_returns_for_any_event_and_leaves_no_waiter() -> None:
    a, b = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(wait_any(a, b, label="t"))
    await asyncio.sleep(0)
    assert not task.done()
    b.set()
    await task
    assert not a.is_set()
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("t.")] == []


async def test_wait_any_returns_at_once_when_an_event_is_already_set() -> None:
    a, b = asyncio.Event(), asyncio.Event()
    a.set()
    await wait_any(a, b)


async def test_wait_any_without_events_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        await wait_any()


async def _value_after(clock: FakeClock, seconds: float, value: object) -> object:
    await clock.sleep(seconds)
    return value
