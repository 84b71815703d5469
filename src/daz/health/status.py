"""What the status page shows (``GET /api/status``): rooms, reconnect timeline, queue, throughput,
dead letters, breakers, checks, instances.

Every figure comes from a live source or a metric; a source that fails or hangs turns its section
into ``{"error": ...}`` and the rest of the page keeps working (the page matters most during an
outage). Reconnect history comes from ``room.state_changed`` events, throughput from the retry
counters sampled every monitor interval.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter

from daz.aio import sleep_or_stop
from daz.clock import Clock, rfc3339
from daz.config import HealthConfig
from daz.events.bus import Event, EventBus
from daz.health.checks import describe_error
from daz.health.monitor import HealthMonitor
from daz.health.sources import StatusSources, resolve, state_name
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.health")

T = TypeVar("T")
TIMELINE_PER_ROOM = 50
DEAD_LETTERS_SHOWN = 20


class RoomTimeline:
    """The last state changes of every room, from ``room.state_changed`` on the bus."""

    def __init__(self, size: int = TIMELINE_PER_ROOM) -> None:
        self._size = size
        self._events: dict[str, collections.deque[dict[str, Any]]] = {}

    def attach(self, bus: EventBus) -> None:
        bus.subscribe("room.state_changed", self.record, name="health.room_timeline")

    def record(self, event: Event) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        room = str(data.get("room", "?"))
        self._events.setdefault(room, collections.deque(maxlen=self._size)).append({
            "time": rfc3339(event.timestamp),
            "from": state_name(data.get("from", "")),
            "to": state_name(data.get("to", "")),
            "reason": None if data.get("reason") is None else str(data.get("reason")),
            "attempt": data.get("attempt"),
        })

    def for_room(self, room: str) -> list[dict[str, Any]]:
        return list(self._events.get(room, ()))


def counter_total(counter: Counter) -> float:
    """A counter's value summed over all its label sets."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@dataclass(frozen=True, slots=True)
class ThroughputSample:
    time: str
    succeeded_per_s: float
    failed_per_s: float
    dead_per_s: float


def rates(previous: tuple[float, float, float], current: tuple[float, float, float], dt: float,
          ) -> tuple[float, float, float]:
    """Per-second increase of three counters over ``dt`` seconds (a counter reset counts as 0)."""
    if dt <= 0:
        return 0.0, 0.0, 0.0
    a, b, c = (max(0.0, cur - prev) / dt for prev, cur in zip(previous, current, strict=True))
    return a, b, c


class ThroughputSampler:
    """A ``Service`` sampling the retry counters every ``interval`` seconds into a short history."""

    name = "health.throughput"

    def __init__(self, metrics: DazMetrics, clock: Clock, interval: float, size: int) -> None:
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self.samples: collections.deque[ThroughputSample] = collections.deque(maxlen=size)
        self._last: tuple[float, tuple[float, float, float]] | None = None

    def _totals(self) -> tuple[float, float, float]:
        m = self._metrics
        return (counter_total(m.retry_success), counter_total(m.retry_failure),
                counter_total(m.retry_dead_letter))

    def sample(self) -> None:
        now, totals = self._clock.monotonic(), self._totals()
        if self._last is not None:
            ok, failed, dead = rates(self._last[1], totals, now - self._last[0])
            self.samples.append(ThroughputSample(rfc3339(self._clock.now()), round(ok, 3),
                                                 round(failed, 3), round(dead, 3)))
        self._last = (now, totals)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self.sample()
            if await sleep_or_stop(self._clock, self._interval, stopping):
                return


class StatusBoard:
    """Builds the ``/api/status`` document from the monitor, the sources and the samplers."""

    def __init__(
        self,
        monitor: HealthMonitor,
        sources: StatusSources,
        metrics: DazMetrics,
        clock: Clock,
        config: HealthConfig,
        *,
        timeline: RoomTimeline | None = None,
        throughput: ThroughputSampler | None = None,
    ) -> None:
        self.monitor = monitor
        self.sources = sources
        self._metrics = metrics
        self._clock = clock
        self._config = config
        self.timeline = timeline if timeline is not None else RoomTimeline()
        self.throughput = throughput if throughput is not None else ThroughputSampler(
            metrics, clock, config.interval_seconds, config.history_size)
        self._started = clock.monotonic()

    async def _guard(self, what: str, call: Callable[[], Awaitable[T]]) -> T | dict[str, str]:
        try:
            async with asyncio.timeout(self._config.check_timeout_seconds):
                return await call()
        except TimeoutError:
            return {"error": f"{what}: no answer within {self._config.check_timeout_seconds:g}s"}
        except Exception as exc:  # noqa: BLE001 - one broken source must not take the page down
            log.warning("health.status_source_failed", source=what, error=repr(exc))
            return {"error": f"{what}: {describe_error(exc)}"}

    async def snapshot(self) -> dict[str, Any]:
        s = self.sources
        report = self.monitor.latest()
        doc: dict[str, Any] = {
            "time": rfc3339(self._clock.now()),
            "uptime_seconds": round(self._clock.monotonic() - self._started, 1),
            "status": report.status.value if report is not None else "starting",
            "interval_seconds": self._config.interval_seconds,
            "admin": self._config.admin_token is not None,
            "rooms": self._rooms(),
            "queue": None,
            "throughput": [asdict(t) for t in self.throughput.samples],
            "dead_letters": None,
            "breakers": None,
            "spool": None,
            "instances": None,
            "checks": self._checks(),
        }
        if s.queue is not None:
            queue = s.queue
            view = await self._guard("queue", lambda: resolve(queue()))
            doc["queue"] = view if isinstance(view, dict) else {
                "depth": dict(view.depth), "oldest_pending_age_seconds": view.oldest_pending_age_seconds,
                "dead_letters_last_hour": view.dead_letters_last_hour, "reclaims": view.reclaims}
        if s.dead_letters is not None:
            dead = s.dead_letters
            rows = await self._guard("dead_letters", lambda: resolve(dead(DEAD_LETTERS_SHOWN)))
            doc["dead_letters"] = rows if isinstance(rows, dict) else [asdict(r) for r in rows]
        if s.breakers is not None:
            breakers = s.breakers
            snap = await self._guard("breakers", lambda: resolve(breakers()))
            doc["breakers"] = snap if isinstance(snap, dict) else [_plain(dict(b)) for b in snap]
        if s.spool is not None:
            spool = s.spool
            doc["spool"] = await self._guard("spool", lambda: resolve(spool()))
        if s.instances is not None:
            instances = s.instances
            rows2 = await self._guard("instances", lambda: resolve(instances()))
            doc["instances"] = rows2 if isinstance(rows2, dict) else [_plain(dict(r)) for r in rows2]
        return doc

    def _rooms(self) -> list[dict[str, Any]] | dict[str, str]:
        if self.sources.rooms is None:
            return []
        now = self._clock.monotonic()
        try:
            rooms = list(self.sources.rooms())
        except Exception as exc:  # noqa: BLE001
            return {"error": f"rooms: {describe_error(exc)}"}
        out = []
        for r in rooms:
            state = state_name(r.state)
            frame_age = None if r.last_frame_at is None else round(now - r.last_frame_at, 1)
            out.append({
                "name": r.name,
                "state": state,
                "state_for_seconds": round(now - r.state_since, 1),
                "uptime_seconds": round(now - r.connected_since, 1)
                if state == "ready" and r.connected_since is not None else None,
                "attempt": r.attempt,
                "reconnects": r.reconnects,
                "flaps": r.flaps_in_window,
                "degraded": r.degraded,
                "kicked_reason": r.kicked_reason,
                # why a room is not READY (parked behind the socket cap, stopped, waiting, ...)
                "reason": None if state == "ready" else getattr(r, "reason", None),
                "server": getattr(r, "server", None),
                "media_playing": r.media_playing,
                "last_frame_age_seconds": frame_age,
                "outbox_depth": r.outbox_depth,
                "channel": self._channel(r.name),
                "timeline": self.timeline.for_room(r.name),
            })
        return out

    def _channel(self, room: str) -> Any:
        if self.sources.channels is None:
            return None
        try:
            return self.sources.channels(room)
        except Exception as exc:  # noqa: BLE001 - one room's card must not take the page down
            return {"error": f"channel: {describe_error(exc)}"}

    def _checks(self) -> list[dict[str, Any]]:
        report = self.monitor.latest()
        if report is None:
            return []
        return [
            {
                "component": c.component,
                "status": c.status.value,
                "critical": c.critical,
                "since": rfc3339(c.since),
                "results": [
                    {"measurement": r.measurement, "status": r.status.value,
                     "observed_value": r.observed_value, "observed_unit": r.observed_unit, "output": r.output}
                    for r in c.results
                ],
            }
            for c in sorted(report.components.values(), key=lambda c: c.component)
        ]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values: enums by value, everything unknown as text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or isinstance(value, bool | int | float | str):
            out[key] = value
        elif hasattr(value, "value"):
            out[key] = state_name(value)
        elif hasattr(value, "isoformat"):
            out[key] = rfc3339(value)
        else:
            out[key] = str(value)
    return out
