"""A deterministic clock for tests: time moves only when the test calls ``advance``."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """Implements ``daz.clock.Clock``. ``sleep`` parks until ``advance`` moves time past its deadline."""

    def __init__(self, start: float = 0.0, wall_start: datetime = _EPOCH) -> None:
        self._now = start
        self._start = start
        self._wall_start = wall_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    def next_deadline(self) -> float | None:
        live = [deadline for deadline, _, fut in self._sleepers if not fut.done()]
        return min(live) if live else None

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline passes, in order.

        Sleepers are woken one deadline at a time and the event loop is given a few turns after each,
        so a woken task that sleeps again within the same span is woken too.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards; advance by 0 or more seconds")
        target = self._now + seconds
        while True:
            await _settle()
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self._now = max(self._now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, fut = heapq.heappop(self._sleepers)
                if not fut.done():
                    fut.set_result(None)
        self._now = target
        await _settle()

    async def run_until_idle(self, limit: float = 3600.0) -> None:
        """Advance to each next deadline until nobody sleeps or ``limit`` seconds have passed."""
        end = self._now + limit
        await _settle()  # tasks created just before this call get to park their sleeps first
        while (deadline := self.next_deadline()) is not None and deadline <= end:
            await self.advance(deadline - self._now)


async def _settle(turns: int = 20) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)
