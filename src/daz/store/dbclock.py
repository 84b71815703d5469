"""``DatabaseClock``: the retry queue's wall time, taken from the database server in PostgreSQL mode.

Several instances on several machines share one queue; ``retry_after``, ``lease_until`` and the
reclaim of expired leases compare times written by different processes, so they must come from one
clock. Rather than rewrite every statement around ``now()`` (and lose ``FakeClock`` testing), the
store, the queue and the journal are given this ``Clock``: local wall time plus the offset to the
database's ``clock_timestamp()``, measured at start and every ``DB_CLOCK_SYNC_SECONDS`` with the
round trip halved (error at most half a round trip, a few milliseconds). Monotonic time and sleeping
stay local: durations never need the other machine. SQLite is single-machine: it keeps the process
clock. Tests keep injecting ``FakeClock`` (alone, or wrapped here with a skewed local clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from daz.aio import sleep_or_stop
from daz.clock import Clock
from daz.errors import StoreError

log = structlog.get_logger("daz.store")

DB_CLOCK_SYNC_SECONDS = 30.0
OFFSET_LOG_SECONDS = 1.0  # an offset this large is worth telling the operator about

ReadDatabaseNow = Callable[[], Awaitable[datetime]]


class DatabaseClock:
    """A ``Clock`` whose ``now()`` follows the database server; ``monotonic``/``sleep`` are local."""

    def __init__(self, local: Clock) -> None:
        self.local = local
        self.offset = timedelta(0)
        self.uncertainty = timedelta(0)
        self.synced = False

    def monotonic(self) -> float:
        return self.local.monotonic()

    def now(self) -> datetime:
        return self.local.now() + self.offset

    async def sleep(self, seconds: float) -> None:
        await self.local.sleep(seconds)

    async def sync(self, read_database_now: ReadDatabaseNow) -> None:
        """Measure the offset: the database's time minus the local time at the round trip's middle."""
        before = self.local.now()
        remote = await read_database_now()
        after = self.local.now()
        half = (after - before) / 2
        offset = remote - (before + half)
        if abs((offset - self.offset).total_seconds()) >= OFFSET_LOG_SECONDS or not self.synced:
            log.info("store.clock_offset", offset_seconds=round(offset.total_seconds(), 3),
                     uncertainty_seconds=round(half.total_seconds(), 4))
        self.offset, self.uncertainty, self.synced = offset, half, True


class DatabaseClockSync:
    """A ``Service`` that keeps a ``DatabaseClock`` measured every ``interval_seconds`` after the first
    measure, which its owner takes before starting it (a failed measure keeps the last offset)."""

    name = "dbclock"

    def __init__(self, clock: DatabaseClock, read_database_now: ReadDatabaseNow, *,
                 interval_seconds: float = DB_CLOCK_SYNC_SECONDS) -> None:
        self.clock = clock
        self.read = read_database_now
        self.interval = interval_seconds

    async def run(self, stopping: asyncio.Event) -> None:
        # The app measured the offset once at start (before the queue could use it): the next
        # measure is one interval later.
        while not await sleep_or_stop(self.clock, self.interval, stopping, label="dbclock.sync_wait"):
            try:
                await self.clock.sync(self.read)
            except StoreError as exc:
                log.warning("store.clock_sync_failed", error=exc.message)
