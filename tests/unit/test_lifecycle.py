"""Lifecycle: serve (drain, grace, failures), supervise (restarts with backoff), pure helpers."""

from __future__ import annotations

import asyncio
import random

import pytest

from daz.backoff import proportional_backoff
from daz.lifecycle import CrashReport, Supervised, next_attempt, restart_delay, serve, supervise
from daz.testing import FakeClock


class Loop:
    """Runs until stopped, then drains for ``drain`` fake seconds."""

    def __init__(self, name: str, clock: FakeClock, drain: float = 0.0) -> None:
        self.name = name
        self.clock = clock
        self.drain = drain
        self.drained = False
        self.cancelled = False

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            await stopping.wait()
            await self.clock.sleep(self.drain)
            self.drained = True
        except asyncio.CancelledError:
            self.cancelled = True
            raise


class Flaky:
    """Crashes ``crashes`` times after ``run_for`` fake seconds each, then runs until stopped."""

    def __init__(self, clock: FakeClock, crashes: int, run_for: float = 1.0) -> None:
        self.name = "flaky"
        self.clock = clock
        self.crashes_left = crashes
        self.run_for = run_for
        self.starts = 0

    async def run(self, stopping: asyncio.Event) -> None:
        self.starts += 1
        if self.crashes_left > 0:
            await self.clock.sleep(self.run_for)
            self.crashes_left -= 1
            raise RuntimeError(f"crash {self.starts}")
        await stopping.wait()


def test_next_attempt_resets_after_a_stable_run() -> None:
    assert next_attempt(0, 1.0, stable_after=60) == 1
    assert next_attempt(3, 59.9, stable_after=60) == 4
    assert next_attempt(7, 60.0, stable_after=60) == 1


def test_restart_delay_uses_the_proportional_backoff() -> None:
    for attempt in range(1, 10):
        assert restart_delay(attempt, random.Random(attempt), base=1, cap=60) == proportional_backoff(
            attempt, random.Random(attempt), base=1, cap=60
        )
    assert restart_delay(100, random.Random(0), base=1, cap=60) <= 60


async def test_service_crashes_twice_and_is_restarted() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    flaky = Flaky(clock, crashes=2)
    reports: list[CrashReport] = []
    rng = random.Random(5)
    expected = [proportional_backoff(1, random.Random(5), base=1, cap=60)]
    expected.append(proportional_backoff(2, _after_one_draw(5), base=1, cap=60))

    async with asyncio.TaskGroup() as group:
        group.create_task(
            supervise(flaky, stopping=stopping, clock=clock, rng=rng, base=1, cap=60,
                      on_crash=reports.append, stable_after=60),
            name="test.supervise",
        )
        await clock.advance(1.0)  # first crash
        assert [r.attempt for r in reports] == [1]
        assert reports[0].delay_seconds == pytest.approx(expected[0])
        assert flaky.starts == 1
        await clock.advance(expected[0])  # backoff elapses: restart
        assert flaky.starts == 2
        await clock.advance(1.0)  # second crash
        assert [r.attempt for r in reports] == [1, 2]
        assert reports[1].delay_seconds == pytest.approx(expected[1])
        assert str(reports[1].error) == "crash 2"
        await clock.advance(expected[1])
        assert flaky.starts == 3  # running healthily now
        stopping.set()
    assert len(reports) == 2


def _after_one_draw(seed: int) -> random.Random:
    rng = random.Random(seed)
    rng.random()  # proportional_backoff draws exactly one uniform per call
    return rng


async def test_attempt_resets_after_stable_run() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    flaky = Flaky(clock, crashes=3, run_for=100.0)  # every run lasts longer than stable_after
    reports: list[CrashReport] = []
    async with asyncio.TaskGroup() as group:
        group.create_task(
            supervise(flaky, stopping=stopping, clock=clock, rng=random.Random(0), base=1, cap=60,
                      on_crash=reports.append, stable_after=60),
            name="test.supervise",
        )
        await clock.advance(1000)
        stopping.set()
    assert [r.attempt for r in reports] == [1, 1, 1]


async def test_stop_during_backoff_ends_supervision_promptly() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    flaky = Flaky(clock, crashes=100)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(
            supervise(flaky, stopping=stopping, clock=clock, rng=random.Random(0), base=30, cap=60),
            name="test.supervise",
        )
        await clock.advance(1.0)  # crash, now waiting ~30 s to restart
        assert clock.sleepers == 1
        stopping.set()
        await asyncio.sleep(0)
    assert task.done()
    assert flaky.starts == 1


async def test_supervise_never_swallows_cancellation() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    flaky = Flaky(clock, crashes=100)
    task = None
    with pytest.raises(asyncio.CancelledError):  # noqa: PT012 - the group must be driven inside
        async with asyncio.TaskGroup() as group:
            task = group.create_task(
                supervise(flaky, stopping=stopping, clock=clock, rng=random.Random(0)),
                name="test.supervise",
            )
            await clock.advance(1.0)
            task.cancel()
            await task
    assert task is not None
    assert task.cancelled()


async def test_broken_on_crash_does_not_stop_restarts() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    flaky = Flaky(clock, crashes=2)

    async def explode(_: CrashReport) -> None:
        raise ValueError("reporter bug")

    async with asyncio.TaskGroup() as group:
        group.create_task(
            supervise(flaky, stopping=stopping, clock=clock, rng=random.Random(0), base=1, cap=2,
                      on_crash=explode),
            name="test.supervise",
        )
        await clock.advance(20)
        stopping.set()
    assert flaky.starts == 3


async def test_serve_drains_cooperatively() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    services = [Loop("a", clock, drain=1.0), Loop("b", clock, drain=2.0)]
    async with asyncio.TaskGroup() as group:
        task = group.create_task(serve(services, stopping=stopping, grace_seconds=5, clock=clock),
                                 name="test.serve")
        await clock.advance(0)
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"service.a", "service.b"} <= names
        stopping.set()
        await clock.advance(2.0)
        assert task.done()
    assert all(s.drained and not s.cancelled for s in services)


async def test_serve_cancels_services_after_grace() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    slow = Loop("slow", clock, drain=100.0)
    quick = Loop("quick", clock, drain=0.5)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(serve([slow, quick], stopping=stopping, grace_seconds=3, clock=clock),
                                 name="test.serve")
        await clock.advance(0)
        stopping.set()
        await clock.advance(2.9)
        assert not task.done()
        await clock.advance(0.2)
        assert task.done()
    assert task.exception() is None  # an expired grace period is not an error
    assert quick.drained
    assert slow.cancelled
    assert not slow.drained


async def test_serve_reraises_a_fatal_error_after_stopping_the_others() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    other = Loop("other", clock, drain=1.0)

    class Broken:
        name = "broken"

        async def run(self, stopping: asyncio.Event) -> None:
            await clock.sleep(2)
            raise KeyError("fatal")

    with pytest.raises(ExceptionGroup) as info:  # noqa: PT012 - the group must be driven inside
        async with asyncio.TaskGroup() as group:
            group.create_task(serve([Broken(), other], stopping=stopping, grace_seconds=5, clock=clock),
                              name="test.serve")
            await clock.advance(2)
            assert stopping.is_set()
            await clock.advance(1)
    fatal = info.value.subgroup(KeyError)
    assert fatal is not None
    assert [str(e) for e in fatal.exceptions] == ["'fatal'"]  # the original error, re-raised
    assert other.drained  # drained cooperatively, not cancelled
    assert not other.cancelled


async def test_supervised_service_restarts_inside_serve() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()
    flaky = Flaky(clock, crashes=2)
    wrapped = Supervised(flaky, clock=clock, rng=random.Random(0), base=1, cap=2)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(serve([wrapped], stopping=stopping, grace_seconds=5, clock=clock),
                                 name="test.serve")
        await clock.advance(20)
        assert flaky.starts == 3
        assert not task.done()
        stopping.set()
        await clock.advance(0)
    assert task.exception() is None


async def test_early_return_keeps_the_others_running() -> None:
    clock = FakeClock()
    stopping = asyncio.Event()

    class OneShot:
        name = "oneshot"

        async def run(self, stopping: asyncio.Event) -> None:
            return

    loop = Loop("loop", clock)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(serve([OneShot(), loop], stopping=stopping, clock=clock),
                                 name="test.serve")
        await clock.advance(10)
        assert not task.done()
        stopping.set()
        await clock.advance(0)
    assert loop.drained


async def test_serve_rejects_duplicate_names_and_accepts_empty() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="unique"):
        await serve([Loop("x", clock), Loop("x", clock)], stopping=asyncio.Event())
    await serve([], stopping=asyncio.Event())
