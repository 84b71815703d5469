"""Presence locks on a real PostgreSQL: a crashed instance's rooms move within seconds whatever
``lease_seconds`` is, and an instance whose session the server dropped while it still runs (behind a
partition, so it never hears of it) leaves its rooms before anyone takes them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from cluster_kit import Joined, wait_for

from daz.clock import SystemClock
from daz.cluster.coordinator import ClusterCoordinator
from daz.cluster.presence import LOCK_HOLDER
from daz.config import ClusterConfig
from daz.events import EventBus
from daz.metrics import DazMetrics
from daz.store.migrate import migrate
from daz.testing.faults import TcpProxy

pytestmark = pytest.mark.postgres

ROOMS = [f"room{i}" for i in range(4)]
# lease_seconds and renew at their defaults: the lease alone would take 10 s.
CONFIG = ClusterConfig(enabled=True, rebalance_interval_seconds=0.5)


def coordinator(dsn: str, me: str, joined: Joined, bus: EventBus) -> ClusterCoordinator:
    return ClusterCoordinator(
        dsn=dsn, instance_id=me, rooms=ROOMS, config=CONFIG, bus=bus, metrics=DazMetrics(),
        clock=SystemClock(), on_acquire=joined.acquirer(me), on_lose=joined.loser(me),
    )


async def presence_pid(dsn: str, me: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        pid = await conn.fetchval(LOCK_HOLDER, me)
    finally:
        await conn.close()
    assert pid is not None, f"{me} holds no presence lock"
    return int(pid)


async def terminate(dsn: str, pid: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_a_crashed_instance_rooms_move_before_its_leases_could_expire(pg_dsn: str) -> None:
    await migrate(pg_dsn)
    joined = Joined()
    async with EventBus() as bus:
        coords = {me: coordinator(pg_dsn, me, joined, bus) for me in ("a", "b")}
        stops = {me: asyncio.Event() for me in coords}
        tasks = {me: asyncio.create_task(c.run(stops[me]), name=f"coord.{me}") for me, c in coords.items()}
        try:
            await wait_for(lambda: all(len(c.held) == 2 for c in coords.values()), 20)
            victim = coords["b"]
            b_rooms = set(victim.held)
            # The crash: both sessions end at once (the kernel closes a killed process's sockets).
            await victim._drop_connection()
            await victim._drop_presence()
            tasks["b"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tasks["b"]
            took = await wait_for(lambda: b_rooms <= set(coords["a"].held), CONFIG.lease_seconds)
            print(f"\nrooms of a crashed instance taken {took:.2f}s after its sessions ended "
                  f"(lease_seconds {CONFIG.lease_seconds:g})")
            # Without the presence lock nothing could have moved before the lease expired.
            assert took < CONFIG.lease_seconds - CONFIG.renew_interval_seconds
            assert joined.doubles == []
        finally:
            stops["a"].set()
            await tasks["a"]


async def test_an_owner_whose_session_was_dropped_behind_a_partition_leaves_before_the_takeover(
    pg_dsn: str,
) -> None:
    await migrate(pg_dsn)
    parts = urlsplit(pg_dsn)
    joined = Joined()
    async with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy, EventBus() as bus:
        proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        coords = {"a": coordinator(pg_dsn, "a", joined, bus), "b": coordinator(proxied, "b", joined, bus)}
        stops = {me: asyncio.Event() for me in coords}
        tasks = {me: asyncio.create_task(c.run(stops[me]), name=f"coord.{me}") for me, c in coords.items()}
        try:
            await wait_for(lambda: all(len(c.held) == 2 for c in coords.values()), 20)
            b_rooms = set(coords["b"].held)
            pid = await presence_pid(pg_dsn, "b")
            proxy.blackhole()  # b hears nothing from now on, not even the server's FIN
            cut = time.monotonic()
            await terminate(pg_dsn, pid)  # the server drops b's session; b's process runs on
            took = await wait_for(lambda: b_rooms <= set(coords["a"].held), CONFIG.lease_seconds)
            left = joined.left_at.get("b", cut) - cut
            print(f"\npartition + dropped session: b left {left:.2f}s after the cut, a took b's rooms "
                  f"{took:.2f}s after it")
            # a took the rooms from the lock's absence, well before b's leases could expire...
            assert took < CONFIG.lease_seconds - CONFIG.renew_interval_seconds
            # ...and b, which never learnt that its session was gone, had left each room first.
            assert joined.doubles == []
        finally:
            for me in coords:
                stops[me].set()
            proxy.pass_through()
            await asyncio.gather(*tasks.values())
