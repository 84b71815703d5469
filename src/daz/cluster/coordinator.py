"""The lease coordinator: a Service that keeps this instance's rooms leased, and nothing more.

Every ``renew_interval`` it heartbeats, renews the leases it holds, and follows ``plan_leases``.
A separate watchdog leaves a room (calls ``on_lose``) as soon as the last successful renew is
older than ``lease - safety``: if PostgreSQL becomes unreachable (partition), this instance leaves
its rooms BEFORE another instance can take them, so the same account is never in a room twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from daz import __version__
from daz.aio import sleep_or_stop
from daz.clock import Clock
from daz.cluster import sql
from daz.cluster.plan import LeaseView, must_leave, plan_leases
from daz.config import ClusterConfig
from daz.db.errors import translate
from daz.db.postgres import connect
from daz.errors import DazError, StoreError
from daz.events import EventBus
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.cluster")

OnAcquire = Callable[[str, int], Awaitable[None]]
OnLose = Callable[[str, str], Awaitable[None]]

WATCHDOG_PERIOD_SECONDS = 0.25


@dataclass
class HeldRoom:
    fence: int
    renewed_at: float  # local monotonic time the last successful renew/acquire was sent
    acquired_at: float


@dataclass
class ClusterSnapshot:
    instance_id: str
    instances: list[dict[str, Any]] = field(default_factory=list)
    leases: list[dict[str, Any]] = field(default_factory=list)


class ClusterCoordinator:
    """Leases rooms for this instance. ``on_acquire(room, fence)`` joins, ``on_lose(room, why)`` leaves."""

    name = "cluster"

    def __init__(
        self,
        *,
        dsn: str,
        instance_id: str,
        rooms: Sequence[str],
        config: ClusterConfig,
        bus: EventBus,
        metrics: DazMetrics,
        clock: Clock,
        on_acquire: OnAcquire,
        on_lose: OnLose,
    ) -> None:
        self.dsn = dsn
        self.instance_id = instance_id
        self.rooms = list(rooms)
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self.on_acquire = on_acquire
        self.on_lose = on_lose
        self.held: dict[str, HeldRoom] = {}
        self._conn: asyncpg.Connection | None = None
        self._last_rebalance = float("-inf")
        self._lock = asyncio.Lock()
        self.snapshot = ClusterSnapshot(instance_id=instance_id)
        self.last_tick_ok: float | None = None  # local monotonic time of the last complete tick
        # leave with a margin of one renew interval, so a slow renew cannot outlive the lease
        self.safety_seconds = config.renew_interval_seconds

    # service ---------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watchdog(stopping), name="cluster.watchdog")
            try:
                while not stopping.is_set():
                    await self._tick_safely()
                    await sleep_or_stop(self.clock, self.config.renew_interval_seconds, stopping,
                                        label="cluster.renew_wait")
            finally:
                await asyncio.shield(self._leave_all("shutdown"))

    async def _watchdog(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            now = self.clock.monotonic()
            for room, held in list(self.held.items()):
                if must_leave(held.renewed_at, now, self.config.lease_seconds, self.safety_seconds):
                    log.warning("cluster.lease.unconfirmed", room=room, instance=self.instance_id,
                                since_renew=round(now - held.renewed_at, 2))
                    await self._lose(room, "lease_unconfirmed")
            await self.clock.sleep(WATCHDOG_PERIOD_SECONDS)

    async def _tick_safely(self) -> None:
        try:
            # A tick that outlives its interval counts as a database failure (TimeoutError is
            # translated as a lost connection); errors of on_acquire/on_lose pass through.
            with translate("cluster lease tick", passthrough=DazError):
                async with asyncio.timeout(self.config.renew_interval_seconds):
                    await self.tick()
        except StoreError as exc:
            log.warning("cluster.tick_failed", instance=self.instance_id, error=exc.message,
                        retryable=exc.retryable)
            await self._drop_connection()

    # one step ----------------------------------------------------------------------------------
    async def tick(self) -> None:
        async with self._lock:
            conn = await self._connection()
            await conn.execute(
                sql.HEARTBEAT, self.instance_id, socket.gethostname(), os.getpid(), __version__
            )
            await conn.execute(sql.ENSURE_ROOMS, self.rooms)
            await self._renew(conn)
            live_rows = await conn.fetch(sql.LIVE_INSTANCES, self.config.instance_timeout_seconds)
            lease_rows = await conn.fetch(sql.READ_LEASES, self.rooms)
            leases = {
                r["room"]: LeaseView(r["room"], r["owner"], float(r["expires_in"]), int(r["fence"]))
                for r in lease_rows
            }
            live = [r["instance_id"] for r in live_rows]
            now = self.clock.monotonic()
            allow_release = now - self._last_rebalance >= self.config.rebalance_interval_seconds
            plan = plan_leases(self.instance_id, self.rooms, leases, live, allow_release=allow_release)
            if plan.release:
                self._last_rebalance = now
                for room in plan.release:
                    await self._lose(room, "rebalance")
                await conn.execute(sql.RELEASE, list(plan.release), self.instance_id)
            for room in plan.acquire:
                sent_at = self.clock.monotonic()
                row = await conn.fetchrow(
                    sql.ACQUIRE, room, self.instance_id, self.config.lease_seconds,
                    self.config.instance_timeout_seconds,
                )
                if row is None:
                    continue
                fence = int(row["fence"])
                previous = row["previous_owner"]
                self.held[room] = HeldRoom(fence=fence, renewed_at=sent_at, acquired_at=sent_at)
                self.metrics.room_lease_owned.labels(room=room).set(1)
                if previous is not None and previous != self.instance_id:
                    self.metrics.room_failovers.inc()
                log.info("cluster.lease.acquired", room=room, instance=self.instance_id, fence=fence,
                         previous_owner=previous)
                self.bus.publish("cluster.lease.acquired",
                                 {"room": room, "instance": self.instance_id, "fence": fence,
                                  "previous_owner": previous}, source="cluster")
                await self.on_acquire(room, fence)
            self.snapshot = ClusterSnapshot(
                instance_id=self.instance_id,
                instances=[dict(r) for r in live_rows],
                leases=[dict(r) for r in await conn.fetch(sql.READ_LEASES, self.rooms)],
            )
            self.last_tick_ok = self.clock.monotonic()

    async def _renew(self, conn: asyncpg.Connection) -> None:
        if not self.held:
            return
        sent_at = self.clock.monotonic()
        rows = await conn.fetch(sql.RENEW, list(self.held), self.instance_id, self.config.lease_seconds)
        confirmed = {r["room"]: int(r["fence"]) for r in rows}
        for room in list(self.held):
            if confirmed.get(room) == self.held[room].fence:
                self.held[room].renewed_at = sent_at
            else:
                await self._lose(room, "lease_lost")

    async def _lose(self, room: str, reason: str) -> None:
        held = self.held.pop(room, None)
        if held is None:
            return
        self.metrics.room_lease_owned.labels(room=room).set(0)
        log.warning("cluster.lease.released", room=room, instance=self.instance_id, reason=reason)
        self.bus.publish("cluster.lease.released",
                         {"room": room, "instance": self.instance_id, "reason": reason}, source="cluster")
        await self.on_lose(room, reason)

    async def _leave_all(self, reason: str) -> None:
        rooms = list(self.held)
        for room in rooms:
            await self._lose(room, reason)
        if self._conn is not None and rooms:
            with contextlib.suppress(StoreError), translate("cluster lease release"):
                async with asyncio.timeout(2):
                    await self._conn.execute(sql.RELEASE, rooms, self.instance_id)
        await self._drop_connection()

    # connection --------------------------------------------------------------------------------
    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(self.dsn, timeout=self.config.renew_interval_seconds)
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    def instance_rows(self) -> list[dict[str, Any]]:
        """One row per live instance with the rooms it holds and their lease ages (status page)."""
        held_by: dict[str, list[str]] = {}
        for lease in self.snapshot.leases:
            owner = lease.get("owner")
            if owner is not None and float(lease.get("expires_in") or 0) > 0:
                age = lease.get("held_for")
                label = f"{lease['room']} ({float(age):.0f}s)" if age is not None else str(lease["room"])
                held_by.setdefault(str(owner), []).append(label)
        rows = []
        for inst in self.snapshot.instances:
            name = str(inst["instance_id"])
            rows.append({
                "instance": name + (" (this)" if name == self.instance_id else ""),
                "host": inst.get("hostname", ""),
                "pid": inst.get("pid", ""),
                "heartbeat_age_s": round(float(inst.get("heartbeat_age") or 0.0), 1),
                "uptime_s": round(float(inst.get("uptime") or 0.0)),
                "rooms (lease age)": ", ".join(sorted(held_by.get(name, []))) or "-",
            })
        return rows

    def fence_for(self, room: str) -> int | None:
        held = self.held.get(room)
        return held.fence if held is not None else None
