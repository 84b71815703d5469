"""Room leases on a real PostgreSQL: exactly one owner per room, fair spread, take-over after a crash."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import pytest

from daz.clock import SystemClock
from daz.cluster.coordinator import ClusterCoordinator
from daz.config import ClusterConfig
from daz.events import EventBus
from daz.metrics import DazMetrics

pytestmark = pytest.mark.postgres

ROOMS = [f"room{i}" for i in range(6)]
MIGRATION = Path(__file__).parents[3] / "src/daz/store/sql/postgres/0004_cluster.sql"
CONFIG = ClusterConfig(
    enabled=True, lease_seconds=2.0, renew_interval_seconds=0.4, instance_timeout_seconds=1.5,
    rebalance_interval_seconds=0.5,
)


class Joined:
    """Who is in which room, as the rooms layer would see it; records any double occupancy."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.doubles: list[tuple[str, str, str]] = []

    def acquirer(self, me: str):  # type: ignore[no-untyped-def]
        async def on_acquire(room: str, fence: int) -> None:
            if room in self.owner and self.owner[room] != me:
                self.doubles.append((room, self.owner[room], me))
            self.owner[room] = me

        return on_acquire

    def loser(self, me: str):  # type: ignore[no-untyped-def]
        async def on_lose(room: str, reason: str) -> None:
            if self.owner.get(room) == me:
                del self.owner[room]

        return on_lose


async def migrate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(MIGRATION.read_text())
    finally:
        await conn.close()


def coordinator(dsn: str, me: str, joined: Joined, bus: EventBus) -> ClusterCoordinator:
    return ClusterCoordinator(
        dsn=dsn, instance_id=me, rooms=ROOMS, config=CONFIG, bus=bus, metrics=DazMetrics(),
        clock=SystemClock(), on_acquire=joined.acquirer(me), on_lose=joined.loser(me),
    )


async def wait_for(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)
    return loop.time() - start


async def test_three_instances_share_rooms_and_take_over_after_a_crash(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    joined = Joined()
    async with EventBus() as bus:
        coords = {me: coordinator(pg_dsn, me, joined, bus) for me in ("a", "b", "c")}
        stops = {me: asyncio.Event() for me in coords}
        tasks = {me: asyncio.create_task(c.run(stops[me]), name=f"coord.{me}") for me, c in coords.items()}
        try:
            await wait_for(lambda: len(joined.owner) == 6
                           and all(len(c.held) == 2 for c in coords.values()), 10)
            assert joined.doubles == []

            # crash "b": its connection vanishes and its task dies without releasing anything
            crashed = coords["b"]
            b_rooms = set(crashed.held)
            await crashed._drop_connection()
            tasks["b"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tasks["b"]
            took = await wait_for(lambda: all(joined.owner.get(r) in {"a", "c"} for r in b_rooms), 10)
            assert took < CONFIG.lease_seconds + CONFIG.instance_timeout_seconds + 3
            assert joined.doubles == []
            assert {len(coords["a"].held), len(coords["c"].held)} == {3}
        finally:
            for me in ("a", "c"):
                stops[me].set()
            await asyncio.gather(*(t for me, t in tasks.items() if me != "b"))
    assert joined.owner == {}  # graceful stop left every room
