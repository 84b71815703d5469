"""The lease coordinator: a Service that keeps this instance's rooms leased, and nothing more.

Every ``renew_interval`` it heartbeats, renews the leases it holds, and follows ``plan_leases``.
A separate watchdog leaves a room (calls ``on_lose``) as soon as the last successful renew is
older than ``lease - safety``: if PostgreSQL becomes unreachable (partition), this instance leaves
its rooms BEFORE another instance can take them, so the same account is never in a room twice.

Presence (``daz.cluster.presence``): a second, dedicated connection holds this instance's advisory
lock and proves it every ``presence_timeout / 4``; the watchdog also leaves every room when that
proof is ``presence_timeout`` old, and the presence loop watches the others' locks, waking the
lease loop at once when an owner's lock has been missing for the take-over grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from daz import __version__
from daz.aio import race, sleep_or_stop
from daz.clock import Clock
from daz.cluster import sql
from daz.cluster.plan import (
    LeaseView,
    capacities_from_heartbeats,
    must_leave,
    plan_leases,
    waiting_rooms,
)
from daz.cluster.presence import (
    BUMP_EPOCH,
    LOCK_HOLDER,
    OBSERVE,
    TERMINATE,
    TRY_LOCK,
    PresenceTracker,
    Sighting,
    presence_stale,
    takeover_grace,
)
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
PRESENCE_RETRY_SECONDS = 0.25  # a tick that could not acquire for want of a fresh proof retries soon


@dataclass
class HeldRoom:
    fence: int
    renewed_at: float  # local monotonic time the last successful renew/acquire was sent


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
        server_of: Mapping[str, str] | None = None,
        capacity: Mapping[str, int] | None = None,
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
        # Placement by socket capacity: each room's CyTube server, and this instance's cap per server
        # (published with the heartbeat; the others' come back from LIVE_INSTANCES).
        self.server_of = dict(server_of or {})
        self.capacity = dict(capacity or {})
        self.waiting: dict[str, str] = {}  # rooms no live instance has a socket for, with the reason
        self._leaving: set[str] = set()  # popped from held, on_lose still running: not an orphan yet
        self._conn: asyncpg.Connection | None = None
        self._presence_conn: asyncpg.Connection | None = None
        self.presence_epoch: int | None = None
        self.proof_sent_at: float | None = None  # local monotonic send time of the last presence proof
        self.tracker = PresenceTracker(takeover_grace(config.presence_timeout_seconds,
                                                      WATCHDOG_PERIOD_SECONDS))
        self._kick = asyncio.Event()
        self._retry_soon = False
        self._announced: set[str] = set()  # owners already reported gone (the kick fires once each)
        # The first hand-back for fairness waits one interval after start, like every later one.
        self._last_rebalance = clock.monotonic()
        self._lock = asyncio.Lock()
        self.snapshot = ClusterSnapshot(instance_id=instance_id)
        self.last_tick_ok: float | None = None  # local monotonic time of the last complete tick
        # leave with a margin of one renew interval, so a slow renew cannot outlive the lease
        self.safety_seconds = config.renew_interval_seconds

    # service ---------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watchdog(stopping), name="cluster.watchdog")
            tg.create_task(self._presence(stopping), name="cluster.presence")
            try:
                while not stopping.is_set():
                    self._kick.clear()
                    await self._tick_safely()
                    wait = (PRESENCE_RETRY_SECONDS if self._retry_soon
                            else self.config.renew_interval_seconds)
                    # On the injected clock, like every behavioural wait (daz.aio); a kick (a peer
                    # handed rooms back, an owner judged gone) or stopping ends it early.
                    await race({"stop": stopping.wait, "kick": self._kick.wait,
                                "sleep": functools.partial(self.clock.sleep, wait)},
                               label="cluster.renew_wait")
            finally:
                await asyncio.shield(self._leave_all("shutdown"))
                await self._drop_presence()

    async def _watchdog(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            now = self.clock.monotonic()
            if self.held and presence_stale(self.proof_sent_at, now, self.config.presence_timeout_seconds):
                log.warning("cluster.presence_lost", instance=self.instance_id, rooms=sorted(self.held),
                            since_proof=None if self.proof_sent_at is None
                            else round(now - self.proof_sent_at, 2))
                # All at once: the take-over grace allows one leave's time, not one per room.
                async with asyncio.TaskGroup() as group:
                    for room in list(self.held):
                        group.create_task(self._lose(room, "presence_lost"), name=f"cluster.leave.{room}")
            for room, held in list(self.held.items()):
                if must_leave(held.renewed_at, now, self.config.lease_seconds, self.safety_seconds):
                    log.warning("cluster.lease.unconfirmed", room=room, instance=self.instance_id,
                                since_renew=round(now - held.renewed_at, 2))
                    await self._lose(room, "lease_unconfirmed")
            if await sleep_or_stop(self.clock, WATCHDOG_PERIOD_SECONDS, stopping, label="cluster.watchdog"):
                return

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
                sql.HEARTBEAT, self.instance_id, socket.gethostname(), os.getpid(), __version__,
                json.dumps(self.capacity) if self.capacity else None,
            )
            await conn.execute(sql.ENSURE_ROOMS, self.rooms)
            await self._renew(conn)
            live_rows = await conn.fetch(sql.LIVE_INSTANCES, self.config.instance_timeout_seconds)
            lease_rows = await conn.fetch(sql.READ_LEASES, self.rooms)
            leases = {
                r["room"]: LeaseView(r["room"], r["owner"], float(r["expires_in"]), int(r["fence"]))
                for r in lease_rows
            }
            now = self.clock.monotonic()
            gone = self.tracker.gone(now)
            live = [r["instance_id"] for r in live_rows if r["instance_id"] not in gone]
            # Leases naming this instance for rooms it does not hold (it left them: a lost presence,
            # a restart) are handed back now rather than left to expire.
            orphans = [room for room, lease in leases.items()
                       if lease.owner == self.instance_id and lease.expires_in > 0
                       and room not in self.held and room not in self._leaving]
            if orphans:
                await conn.execute(sql.RELEASE, orphans, self.instance_id)
                for room in orphans:
                    leases[room] = LeaseView(room, None, 0.0, leases[room].fence)
            allow_release = now - self._last_rebalance >= self.config.rebalance_interval_seconds
            capacity = capacities_from_heartbeats([dict(r) for r in live_rows], live)
            plan = plan_leases(self.instance_id, self.rooms, leases, live, allow_release=allow_release,
                               server_of=self.server_of, capacity=capacity)
            if plan.release:
                self._last_rebalance = now
                for room in plan.release:
                    await self._lose(room, "rebalance")
                await conn.execute(sql.RELEASE, list(plan.release), self.instance_id)
            # Take rooms only while this instance's own presence is freshly proven: the others judge
            # it by its lock, so a room taken without one could be taken from it again at once.
            fresh = not presence_stale(self.proof_sent_at, now, self.config.presence_timeout_seconds)
            self._retry_soon = bool(plan.acquire) and not fresh  # try again after the next proof
            for room in plan.acquire if fresh else ():
                sent_at = self.clock.monotonic()
                row = await conn.fetchrow(
                    sql.ACQUIRE, room, self.instance_id, self.config.lease_seconds,
                    self.config.instance_timeout_seconds, list(gone), list(gone.values()),
                )
                if row is None:  # a peer took it first (both woken by one NOTIFY): replan soon,
                    self._retry_soon = True  # another free room may be ours instead
                    continue
                fence = int(row["fence"])
                previous = row["previous_owner"]
                self.held[room] = HeldRoom(fence=fence, renewed_at=sent_at)
                self.metrics.room_lease_owned.labels(room=room).set(1)
                if previous is not None and previous != self.instance_id:
                    self.metrics.room_failovers.inc()
                log.info("cluster.lease.acquired", room=room, instance=self.instance_id, fence=fence,
                         previous_owner=previous)
                self.bus.publish("cluster.lease.acquired",
                                 {"room": room, "instance": self.instance_id, "fence": fence,
                                  "previous_owner": previous}, source="cluster")
                await self.on_acquire(room, fence)
            waiting = waiting_rooms(self.rooms, leases, live, self.server_of, capacity)
            if waiting.keys() != self.waiting.keys():
                log.warning("cluster.rooms_waiting", instance=self.instance_id, rooms=sorted(waiting),
                            reason=next(iter(waiting.values()), ""))
            self.waiting = waiting
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
        self._leaving.add(room)
        try:
            self.metrics.room_lease_owned.labels(room=room).set(0)
            log.warning("cluster.lease.released", room=room, instance=self.instance_id, reason=reason)
            self.bus.publish("cluster.lease.released",
                             {"room": room, "instance": self.instance_id, "reason": reason},
                             source="cluster")
            await self.on_lose(room, reason)
        finally:
            self._leaving.discard(room)

    async def _leave_all(self, reason: str) -> None:
        """Shutdown: leave every room, then step out of the cluster and hand the rooms back with a
        NOTIFY, so live peers join them at once (a rolling restart's gap is one leave and one join)."""
        rooms = list(self.held)
        async with asyncio.TaskGroup() as group:
            for room in rooms:
                group.create_task(self._lose(room, reason), name=f"cluster.leave.{room}")
        if self._conn is not None:
            with contextlib.suppress(StoreError), translate("cluster lease release"):
                async with asyncio.timeout(2):
                    # Forgotten first: a peer woken by the NOTIFY must not count this instance in
                    # its fair share, or it would not take more rooms than before.
                    await self._conn.execute(sql.FORGET_INSTANCE, self.instance_id)
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

    # presence ----------------------------------------------------------------------------------
    async def _presence(self, stopping: asyncio.Event) -> None:
        period = self.config.presence_timeout_seconds / 4
        while not stopping.is_set():
            try:
                with translate("cluster presence"):
                    async with asyncio.timeout(self.config.presence_timeout_seconds):
                        await self.prove_presence()
            except StoreError as exc:
                log.warning("cluster.presence_failed", instance=self.instance_id, error=exc.message)
                await self._drop_presence()
            if await sleep_or_stop(self.clock, period, stopping, label="cluster.presence"):
                return

    async def prove_presence(self) -> None:
        """One proof on the locked connection; also watches the others' locks (survivor side)."""
        conn = await self._presence_connection()
        if conn is None:
            return
        sent_at = self.clock.monotonic()
        rows = await conn.fetch(OBSERVE, self.instance_id, self.config.instance_timeout_seconds)
        self.proof_sent_at = sent_at
        now = self.clock.monotonic()
        self.tracker.observe([Sighting(r["instance_id"], int(r["presence_epoch"]), bool(r["present"]))
                              for r in rows], now)
        gone = set(self.tracker.gone(now))
        newly_gone, self._announced = gone - self._announced, gone
        if newly_gone:
            log.warning("cluster.presence.gone", instance=self.instance_id, gone=sorted(newly_gone))
            self._kick.set()  # take their rooms now, not on the next tick

    async def _presence_connection(self) -> asyncpg.Connection | None:
        """The connection holding our lock (taken, and the epoch bumped, on a fresh connection)."""
        if self._presence_conn is not None and not self._presence_conn.is_closed():
            return self._presence_conn
        self.proof_sent_at = None  # a closed session proves nothing: the watchdog leaves at once
        conn = await connect(self.dsn, timeout=self.config.presence_timeout_seconds)
        try:
            if not await conn.fetchval(TRY_LOCK, self.instance_id):
                # Our own previous session, left on the server by a partition that healed (or a
                # second process misconfigured with our id): end it; the lock is ours next period.
                for row in await conn.fetch(LOCK_HOLDER, self.instance_id):
                    log.warning("cluster.presence.stale_session", instance=self.instance_id, pid=row["pid"])
                    await conn.fetchval(TERMINATE, row["pid"])
                conn.terminate()
                return None
            self.presence_epoch = int(await conn.fetchval(
                BUMP_EPOCH, self.instance_id, socket.gethostname(), os.getpid(), __version__))
            # Rooms handed back by a peer (rebalance, shutdown) wake the lease loop at once.
            await conn.add_listener(str(await conn.fetchval(sql.CHANNEL)), self._on_released)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._presence_closed)
        self._presence_conn = conn
        log.info("cluster.presence.locked", instance=self.instance_id, epoch=self.presence_epoch)
        return conn

    def _on_released(self, *_: object) -> None:
        self._kick.set()

    def _presence_closed(self, _conn: object) -> None:
        self.proof_sent_at = None  # the session is gone: leave now (the watchdog runs within 0.25 s)

    async def _drop_presence(self) -> None:
        conn, self._presence_conn = self._presence_conn, None
        self.proof_sent_at = None
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

