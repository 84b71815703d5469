"""The checks on daz's own parts: rooms, database and pool, retry queue, breakers, spool.

Each check reads its part only through a callable ``app.py`` registers (see ``health.sources``),
measures, and asks ``health.verdicts`` for the status. A source that raises makes its measurement
fail with the error's class and message (secrets in URLs are masked), never the monitor.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from daz.clock import Clock
from daz.config import CytubeConfig, HealthThresholds
from daz.health import verdicts
from daz.health.sources import (
    BreakersSource,
    MaybeAwaitable,
    PoolSource,
    QueueSource,
    RoomsSource,
    SpoolSource,
    resolve,
    state_name,
)
from daz.health.types import CheckResult, HealthStatus

log = structlog.get_logger("daz.health")

ROOM_RECONNECT = "room_reconnect"
# Queue statuses that will not run again (the store's terminal statuses): not part of the depth.
FINISHED_STATUSES = frozenset({"completed", "failed", "dead_letter"})
# CyTube's handshake values (docs: cytube-protocol.md), used until a room reports its own.
CYTUBE_PING_INTERVAL_SECONDS = 25.0
CYTUBE_PING_TIMEOUT_SECONDS = 120.0
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)
_MAX_ERROR_CHARS = 200


def describe_error(exc: BaseException) -> str:
    """``Class: message`` with credentials in URLs removed and the length bounded."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", str(exc))
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ResultBuilder:
    """Collects results stamped with one time, so one run reads as one moment."""

    def __init__(self, clock: Clock) -> None:
        self.time = clock.now()
        self.items: list[CheckResult] = []

    def add(
        self,
        component: str,
        measurement: str,
        verdict: tuple[HealthStatus, str],
        value: float | int | str | None,
        unit: str | None,
        *,
        recovery: str | None = None,
    ) -> None:
        status, output = verdict
        self.items.append(
            CheckResult(component, measurement, status, value, unit, output, self.time, recovery)
        )


# rooms -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RoomLimits:
    media_update_timeout_seconds: float = 300.0
    liveness_margin_seconds: float = 5.0
    flap_threshold: int = 5

    @classmethod
    def from_config(cls, cytube: CytubeConfig) -> RoomLimits:
        return cls(
            media_update_timeout_seconds=cytube.media_update_timeout_seconds,
            liveness_margin_seconds=cytube.liveness_margin_seconds,
            flap_threshold=cytube.flap_threshold,
        )


Reconnect = Callable[[str, str], MaybeAwaitable[None]]  # (room, reason)


class RoomsCheck:
    """Every room: ``state``, ``liveness`` (frames vs Engine.IO's ping rule), ``media`` (the
    idle-aware media-update timeout), ``flaps``. Component ``room:<name>``, critical.

    Recovery: a READY room whose liveness fails, or whose media updates time out while a PING is
    also overdue (the protocol notes: a media stall must be confirmed by liveness before the
    connection is torn down), asks for ``room_reconnect``.
    """

    name = "rooms"

    def __init__(
        self,
        rooms: RoomsSource,
        reconnect: Reconnect | None,
        clock: Clock,
        limits: RoomLimits | None = None,
        *,
        critical: bool = True,
    ) -> None:
        self._rooms = rooms
        self._reconnect = reconnect
        self._clock = clock
        self.limits = limits if limits is not None else RoomLimits()
        self.critical = critical

    async def run(self) -> list[CheckResult]:
        out = ResultBuilder(self._clock)
        now = self._clock.monotonic()
        for room in self._rooms():
            component = f"room:{room.name}"
            state = state_name(room.state)
            out.add(component, "state", verdicts.room_state(
                state, degraded=room.degraded, kicked_reason=room.kicked_reason,
                reason=getattr(room, "reason", None)), state, None)
            out.add(component, "flaps", verdicts.flaps(room.flaps_in_window, self.limits.flap_threshold),
                    room.flaps_in_window, None)
            if state != "ready":
                continue
            since = room.connected_since if room.connected_since is not None else room.state_since
            frame_age = now - (room.last_frame_at if room.last_frame_at is not None else since)
            limits = verdicts.LivenessLimits(
                room.ping_interval if room.ping_interval is not None else CYTUBE_PING_INTERVAL_SECONDS,
                room.ping_timeout if room.ping_timeout is not None else CYTUBE_PING_TIMEOUT_SECONDS,
                self.limits.liveness_margin_seconds,
            )
            live = verdicts.liveness(frame_age, limits)
            media_from = room.last_media_update_at if room.last_media_update_at is not None else since
            media = verdicts.media_updates(
                room.media_playing, now - media_from, self.limits.media_update_timeout_seconds
            )
            recovery = None
            if self._reconnect is not None and (
                live[0] is HealthStatus.FAIL
                or (media[0] is HealthStatus.FAIL and live[0] is not HealthStatus.PASS)
            ):
                recovery = ROOM_RECONNECT
            out.add(component, "liveness", live, round(frame_age, 3), "s", recovery=recovery)
            out.add(component, "media", media,
                    round(now - media_from, 3) if room.media_playing else None,
                    "s" if room.media_playing else None)
        return out.items

    async def recover(self, component: str, action: str, reason: str) -> None:
        if action != ROOM_RECONNECT or self._reconnect is None:
            return
        room = component.removeprefix("room:")
        await resolve(self._reconnect(room, f"health:{reason}"))


# database --------------------------------------------------------------------------------------

Ping = Callable[[], Awaitable[object]]


class DatabaseCheck:
    """``latency`` of ``SELECT 1`` (through ``ping``), and when a pool is registered its
    ``saturation`` and ``connection_health``. Component ``database``, critical."""

    name = "database"

    def __init__(
        self,
        ping: Ping,
        clock: Clock,
        thresholds: HealthThresholds,
        *,
        pool: PoolSource | None = None,
        pool_health_threshold: float = 0.3,
        critical: bool = True,
    ) -> None:
        self._ping = ping
        self._clock = clock
        self._t = thresholds
        self._pool = pool
        self._pool_health_threshold = pool_health_threshold
        self.critical = critical

    async def run(self) -> list[CheckResult]:
        out = ResultBuilder(self._clock)
        started = self._clock.monotonic()
        try:
            await self._ping()
        except Exception as exc:  # noqa: BLE001 - any failure of the probe is the verdict
            failed = (HealthStatus.FAIL, f"SELECT 1 failed: {describe_error(exc)}")
            out.add(self.name, "latency", failed, None, "ms")
        else:
            elapsed_ms = (self._clock.monotonic() - started) * 1000
            out.add(self.name, "latency", verdicts.latency_ms(
                elapsed_ms, self._t.db_latency_warn_ms, self._t.db_latency_fail_ms, "SELECT 1"),
                round(elapsed_ms, 2), "ms")
        if self._pool is not None:
            try:
                pool = await resolve(self._pool())
            except Exception as exc:  # noqa: BLE001
                out.add(self.name, "saturation", (HealthStatus.FAIL, describe_error(exc)), None, "percent")
                return out.items
            if pool is not None:
                ratio = pool.in_use / pool.max_size if pool.max_size > 0 else 1.0
                out.add(self.name, "saturation", verdicts.pool_saturation(
                    pool.in_use, pool.waiting, pool.max_size,
                    self._t.pool_saturation_warn, self._t.pool_saturation_fail), round(ratio * 100, 1),
                    "percent")
                out.add(self.name, "connection_health", verdicts.pool_health(
                    pool.health_score_min, pool.health_score_avg, self._pool_health_threshold),
                    pool.health_score_min, None)
        return out.items


# retry queue -----------------------------------------------------------------------------------

class QueueCheck:
    """``depth`` (items not yet done, by status in the output), ``oldest_pending``,
    ``dead_letters`` (last hour), ``reclaims`` (lease take-overs, reported). Component
    ``retry_queue``, critical: an unreachable store fails it."""

    name = "retry_queue"

    def __init__(
        self, stats: QueueSource, clock: Clock, thresholds: HealthThresholds, *, critical: bool = True
    ) -> None:
        self._stats = stats
        self._clock = clock
        self._t = thresholds
        self.critical = critical

    async def run(self) -> list[CheckResult]:
        out = ResultBuilder(self._clock)
        try:
            view = await resolve(self._stats())
        except Exception as exc:  # noqa: BLE001
            unreadable = (HealthStatus.FAIL, f"queue unreadable: {describe_error(exc)}")
            out.add(self.name, "depth", unreadable, None, None)
            return out.items
        waiting = sum(n for status, n in view.depth.items() if status not in FINISHED_STATUSES)
        by_status = ", ".join(f"{k}={v}" for k, v in sorted(view.depth.items()))
        out.add(self.name, "depth", (HealthStatus.PASS, by_status), waiting, None)
        out.add(self.name, "oldest_pending", verdicts.oldest_pending(
            view.oldest_pending_age_seconds, self._t.queue_oldest_pending_warn_seconds,
            self._t.queue_oldest_pending_fail_seconds),
            None if view.oldest_pending_age_seconds is None else round(view.oldest_pending_age_seconds, 1),
            "s")
        out.add(self.name, "dead_letters", verdicts.dead_letters(
            view.dead_letters_last_hour, self._t.dead_letters_warn_per_hour,
            self._t.dead_letters_fail_per_hour), view.dead_letters_last_hour, None)
        out.add(self.name, "reclaims", (HealthStatus.PASS, ""), view.reclaims, None)
        return out.items


# breakers --------------------------------------------------------------------------------------

class BreakersCheck:
    """One ``breaker:<name>`` component per breaker, measurement ``state`` (rule in
    ``verdicts.breaker``). The time a breaker has been open is tracked here, from the first run
    that saw it open. Not critical by default: an open breaker already protects its caller, and
    the dependency's own check (``database``) decides readiness."""

    name = "breakers"

    def __init__(
        self, snapshot: BreakersSource, clock: Clock, thresholds: HealthThresholds, *, critical: bool = False
    ) -> None:
        self._snapshot = snapshot
        self._clock = clock
        self._t = thresholds
        self.critical = critical
        self._open_since: dict[str, float] = {}

    async def run(self) -> list[CheckResult]:
        out = ResultBuilder(self._clock)
        now = self._clock.monotonic()
        try:
            rows: Sequence[Mapping[str, Any]] = await resolve(self._snapshot())
        except Exception as exc:  # noqa: BLE001
            out.add("breaker:registry", "state", (HealthStatus.FAIL, describe_error(exc)), None, None)
            return out.items
        seen: set[str] = set()
        for row in rows:
            name = str(row.get("name", "?"))
            state = state_name(row.get("state", "closed"))
            seen.add(name)
            if state in verdicts.OPEN_STATES:
                self._open_since.setdefault(name, now)
            else:
                self._open_since.pop(name, None)
            open_for = now - self._open_since.get(name, now)
            out.add(f"breaker:{name}", "state",
                    verdicts.breaker(state, open_for, self._t.breaker_open_fail_seconds), state, None)
        for gone in set(self._open_since) - seen:
            del self._open_since[gone]
        return out.items


# spool -----------------------------------------------------------------------------------------

class SpoolCheck:
    """``items`` waiting in the local spool (store unreachable). Component ``spool``, not critical:
    spooling is the designed answer to a store outage, and the ``retry_queue`` check fails for it."""

    name = "spool"

    def __init__(
        self, depth: SpoolSource, clock: Clock, thresholds: HealthThresholds, capacity: int,
        *, critical: bool = False,
    ) -> None:
        self._depth = depth
        self._clock = clock
        self._t = thresholds
        self._capacity = capacity
        self.critical = critical

    async def run(self) -> list[CheckResult]:
        out = ResultBuilder(self._clock)
        try:
            items = int(await resolve(self._depth()))
        except Exception as exc:  # noqa: BLE001
            out.add(self.name, "items", (HealthStatus.FAIL, describe_error(exc)), None, None)
            return out.items
        out.add(self.name, "items", verdicts.spool(items, self._t.spool_warn_items, self._capacity),
                items, None)
        return out.items
