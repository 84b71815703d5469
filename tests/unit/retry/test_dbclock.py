"""``DatabaseClock`` under ``FakeClock``: wall time follows the database, durations stay local."""

from __future__ import annotations

from datetime import datetime, timedelta

from daz.store.dbclock import DatabaseClock
from daz.testing import FakeClock


async def test_now_follows_the_database_and_monotonic_time_stays_local() -> None:
    local = FakeClock()
    clock = DatabaseClock(local)
    database_ahead = timedelta(seconds=-60)  # this machine's clock is 60 s fast

    async def read_database_now() -> datetime:
        await local.advance(0.004)  # half of an 8 ms round trip on each side
        moment = local.now() + database_ahead
        await local.advance(0.004)
        return moment

    await clock.sync(read_database_now)
    assert clock.synced
    assert abs((clock.offset - database_ahead).total_seconds()) < 1e-6
    assert clock.uncertainty == timedelta(seconds=0.004)
    assert clock.now() == local.now() + database_ahead
    before = clock.monotonic()
    await local.advance(5)
    assert clock.monotonic() - before == 5
    assert clock.now() == local.now() + database_ahead
