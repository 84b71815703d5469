"""Two queue instances whose process clocks differ by 60 s share one PostgreSQL queue under load:
with the database clock (``daz.store.dbclock``) no item is reclaimed while its worker is alive and no
side effect runs twice. Without it, the fast instance sees the slow one's live leases as expired.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta

import pytest

from daz.clock import Clock, SystemClock
from daz.config import RetryConfig, RetryPolicyConfig
from daz.retry.queue import RetryQueue
from daz.store import NewItem, QueueItem
from daz.store.dbclock import DatabaseClock
from daz.store.migrate import migrate
from daz.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres

ITEMS = 120
SKEW = timedelta(seconds=60)


class SkewedClock:
    """The process clock of a machine whose wall clock is ``skew`` ahead (monotonic time is local)."""

    def __init__(self, skew: timedelta) -> None:
        self.inner = SystemClock()
        self.skew = skew

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def now(self) -> datetime:
        return self.inner.now() + self.skew

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def run_two_skewed_instances(dsn: str, *, database_clock: bool) -> tuple[Counter[str], int]:
    await migrate(dsn)
    executed: Counter[str] = Counter()
    config = RetryConfig(
        worker_count=2, batch_size=4, lease_seconds=2, heartbeat_interval_seconds=0.5,
        poll_interval_seconds=0.2,
        default_policy=RetryPolicyConfig(max_retries=3, initial_delay_seconds=0.1, jitter=0,
                                         timeout_seconds=30),
        retry_policies={},
    )

    async def side_effect(item: QueueItem) -> None:
        executed[item.idempotency_key or str(item.id)] += 1
        await asyncio.sleep(0.15)  # work that outlives nothing but a wrongly expired lease

    stores: list[PostgresStore] = []
    queues: list[RetryQueue] = []
    for skew in (timedelta(0), SKEW):
        local = SkewedClock(skew)
        clock: Clock = DatabaseClock(local) if database_clock else local
        store = await PostgresStore.connect(dsn, clock=clock, min_size=1, max_size=4)
        if isinstance(clock, DatabaseClock):
            await clock.sync(store.database_now)
        queue = RetryQueue(store, config, None, None, clock, random.Random(len(queues)))
        queue.register("side_effect", side_effect)
        stores.append(store)
        queues.append(queue)
    try:
        # Scheduled by the slow instance (its "now" is the earlier one): every item is due for both.
        await queues[0].schedule(*(NewItem("side_effect", {"n": i}, idempotency_key=f"k{i}",
                                           retry_after=queues[0].clock.now()) for i in range(ITEMS)))
        stopping = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            for i, queue in enumerate(queues):
                group.create_task(queue.run(stopping), name=f"test.queue.{i}")
            async with asyncio.timeout(60):
                while True:
                    rows = await stores[0].stats()
                    open_items = sum(r.count for r in rows if r.status in ("pending", "processing"))
                    if open_items == 0:
                        break
                    await asyncio.sleep(0.2)
            stopping.set()
        reclaimed = sum(q.stats.get("reclaimed", 0) for q in queues)
    finally:
        for store in stores:
            await store.close()
    return executed, reclaimed


async def test_clocks_60s_apart_share_the_queue_without_early_reclaims(pg_dsn: str) -> None:
    executed, reclaimed = await run_two_skewed_instances(pg_dsn, database_clock=True)
    assert len(executed) == ITEMS
    assert [key for key, n in executed.items() if n > 1] == []  # no side effect twice
    assert reclaimed == 0  # no live worker's item taken from it
