"""Room leases on a real PostgreSQL: exactly one owner per room, fair spread, take-over after a crash."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from cluster_kit import Joined, wait_for

from daz.clock import SystemClock
from daz.cluster.coordinator import ClusterCoordinator
from daz.config import ClusterConfig
from daz.events import EventBus
from daz.metrics import DazMetrics
from daz.store.migrate import migrate

pytestmark = pytest.mark.postgres

ROOMS = [f"room{i}" for i in range(6)]
CONFIG = ClusterConfig(
    enabled=True, lease_seconds=2.0, renew_interval_seconds=0.4, instance_timeout_seconds=1.5,
    rebalance_interval_seconds=0.5,
)


def coordinator(dsn: str, me: str, joined: Joined, bus: EventBus) -> ClusterCoordinator:
    return ClusterCoordinator(
        dsn=dsn, instance_id=me, rooms=ROOMS, config=CONFIG, bus=bus, metrics=DazMetrics(),
        clock=SystemClock(), on_acquire=joined.acquirer(me), on_lose=joined.loser(me),
    )


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
