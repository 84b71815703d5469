"""The composition root: configuration in, a running bot out. Wiring only, no behaviour.

``DazApp`` builds every part from a ``DazConfig``, owns their resources in one ``AsyncExitStack``
(store, SQL backend, event bus) and runs their services under ``lifecycle.serve``. Lower packages that
must reach up (the retry queue re-running SQL operations and undelivered chat lines; health reading
rooms, queue, breakers) get handlers, checks and status callables registered here, so no lower
package imports a higher one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

import structlog

from daz.clock import Clock, SystemClock
from daz.cluster.coordinator import ClusterCoordinator
from daz.cluster.gate import LeaseGate
from daz.cluster.health import ClusterCheck
from daz.cluster.identity import resolve_instance_id
from daz.config import DazConfig
from daz.cytube.handoff import HandoffPuller
from daz.cytube.journal import CYTUBE_COMMAND, RoomAvailabilityGate, StoreJournal
from daz.cytube.room_actions import RoomActions
from daz.cytube.rooms import RoomManager
from daz.errors import DazError
from daz.events.bus import EventBus
from daz.health.checks import (
    BreakersCheck,
    DatabaseCheck,
    QueueCheck,
    RoomLimits,
    RoomsCheck,
    SpoolCheck,
)
from daz.health.external import ExternalCheck
from daz.health.http import HealthServer
from daz.health.monitor import HealthMonitor
from daz.health.process import LoopLagProbe, ProcessCheck
from daz.health.sources import DeadLetterView, QueueView, StatusSources
from daz.health.status import StatusBoard
from daz.health.types import CheckResult, HealthStatus
from daz.lifecycle import Service, serve
from daz.metrics import DazMetrics
from daz.plugins.host import PluginFactory, PluginHost, RestartPolicy, plugin_verdict
from daz.resilience.gate import BreakerGate
from daz.resilience.registry import BreakerRegistry
from daz.retry.budget import RetryBudget
from daz.retry.queue import RetryQueue
from daz.retry.spool import Spool, SpoolDrainer
from daz.sql.service import SqlService
from daz.store import open_store
from daz.store.base import RetryStore
from daz.store.migrate import migrate
from daz.transport.base import TransportFactory
from daz.transport.socketio import socketio_transport_factory

log = structlog.get_logger("daz.app")

DEFAULT_STOP_GRACE_SECONDS = 10.0


# plugin health -------------------------------------------------------------------------------

class PluginsCheck:
    """Component ``plugin:<name>``, measurement ``state``; never critical (a broken plugin is
    reported, it does not make the bot unready)."""

    name = "plugins"
    critical = False

    def __init__(self, host: PluginHost, clock: Clock) -> None:
        self.host = host
        self.clock = clock

    async def run(self) -> list[CheckResult]:
        now_wall = self.clock.now()
        now = self.clock.monotonic()
        results: list[CheckResult] = []
        for name in self.host.order:
            status = self.host.statuses[name]
            verdict = HealthStatus(plugin_verdict(status, now))
            output = "" if verdict is HealthStatus.PASS else (
                f"{status.state.value}; restarts {status.restarts}; last error: {status.last_error}")
            results.append(CheckResult(f"plugin:{name}", "state", verdict, status.state.value, None,
                                       output, now_wall))
        return results


# the app -------------------------------------------------------------------------------------

@dataclass
class AppOptions:
    """What tests, the demo and embedding code may replace. Defaults are production."""

    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    metrics: DazMetrics | None = None
    transport_factory: TransportFactory | None = None
    plugin_factories: Mapping[str, PluginFactory] | None = None
    plugin_policy: RestartPolicy | None = None
    wrap_store: Callable[[RetryStore], RetryStore] | None = None
    stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS
    journal_hold_seconds: float | None = None


class DazApp:
    """``async with DazApp(config) as app: await app.run(stopping)``."""

    def __init__(self, config: DazConfig, options: AppOptions | None = None) -> None:
        self.config = config
        self.options = options if options is not None else AppOptions()
        self.clock = self.options.clock
        self.rng = self.options.rng
        self.metrics = self.options.metrics if self.options.metrics is not None else DazMetrics()
        self.instance = uuid.uuid4().hex[:8]
        self._stack = contextlib.AsyncExitStack()
        # Set by __aenter__.
        self.bus: EventBus
        self.store: RetryStore
        self.breakers: BreakerRegistry
        self.queue: RetryQueue
        self.sql: SqlService
        self.rooms: RoomManager
        self.journal: StoreJournal
        self.monitor: HealthMonitor
        self.health_server: HealthServer | None = None
        self.plugins: PluginHost
        self.gate: BreakerGate
        self.started = asyncio.Event()
        self.migrated: list[int] = []
        self.board: StatusBoard | None = None

    @property
    def db_url(self) -> str:
        return self.config.database.url.get_secret_value()

    async def __aenter__(self) -> DazApp:
        try:
            await self._build()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _build(self) -> None:
        cfg, clock, rng, metrics = self.config, self.clock, self.rng, self.metrics
        self.migrated = await migrate(self.db_url)
        store = await open_store(self.db_url, clock=clock, apply_migrations=False, pool_min_size=1,
                                 pool_max_size=max(2, cfg.retry.worker_count + 1))
        self._stack.push_async_callback(store.close)
        self.store = self.options.wrap_store(store) if self.options.wrap_store else store
        self.bus = await self._stack.enter_async_context(EventBus(clock=clock, metrics=metrics))
        self.breakers = BreakerRegistry(cfg, self.bus, metrics, clock, rng)
        budget = RetryBudget(cfg.retry_budget, clock, metrics)
        self.gate = BreakerGate(self.breakers, clock=clock, budget=budget, store=self.store,
                                release_per_second=cfg.retry.breaker_release_per_second, metrics=metrics)
        self.spool = Spool(cfg.spool.path, max_items=cfg.spool.max_items, metrics=metrics)
        self._stack.callback(self.spool.close)
        self.room_gate = RoomAvailabilityGate(self.gate, lambda: getattr(self, "rooms", None))
        self.queue = RetryQueue(self.store, cfg.retry, self.bus, metrics, clock, rng, self.room_gate,
                                on_store_unavailable=self.spool)
        self.spool_drainer = SpoolDrainer(self.spool, self.store, clock=clock, metrics=metrics,
                                          interval_seconds=cfg.spool.drain_interval_seconds,
                                          on_drained=self.queue.wake)
        self.sql = SqlService(self.db_url, self.bus, metrics, clock, self.breakers, self.queue,
                             cfg.database, rng=rng)
        await self.sql.start()
        self._stack.push_async_callback(self.sql.close)
        policy = cfg.retry.policy_for(CYTUBE_COMMAND)
        hold = self.options.journal_hold_seconds
        self.journal = StoreJournal(self.store, clock, max_retries=policy.max_retries,
                                    hold_seconds=hold if hold is not None else policy.max_delay_seconds)
        self.queue.register(CYTUBE_COMMAND, self.journal.handle)
        transport_factory = self.options.transport_factory or _default_transport_factory()
        self.cluster = self._cluster()
        self.rooms = RoomManager(cfg, self.bus, metrics, clock, rng, transport_factory, self.journal,
                                 leases=self.leases)
        self.journal.rooms = self.rooms
        self.handoff: HandoffPuller | None = None
        if self.cluster is not None:  # other instances may store lines for the rooms held here
            self.handoff = HandoffPuller(self.journal, self.rooms)
            self.queue.on_store_wake(self.handoff.wake)
        self.bus.subscribe("room.line.delivered", self._on_delivered, name="app.line_delivered")
        self.plugins = PluginHost(
            cfg.plugins, bus=self.bus, clock=clock, metrics=metrics, rng=rng, sql=self.sql,
            rooms=self.rooms, actions=RoomActions(self.rooms), status=self.status_line,
            factories=self.options.plugin_factories,
            policy=self.options.plugin_policy, stop_grace_seconds=self.options.stop_grace_seconds,
        )
        self.gate.set_on_release(self.queue.wake)
        self.lag_probe = LoopLagProbe(clock, cfg.health.loop_lag_interval_seconds, metrics)
        self.monitor = HealthMonitor(self._checks(), self.bus, metrics, clock, cfg.health,
                                     lag_probe=self.lag_probe)
        if cfg.health.enabled:
            board = StatusBoard(self.monitor, self._sources(), metrics, clock, cfg.health)
            board.timeline.attach(self.bus)
            self.board = board
            self.health_server = HealthServer(self.monitor, board, metrics, cfg.health)

    @property
    def cluster_mode(self) -> str:
        """``on``, ``off``, or why it is off although configured (SQLite is single-machine)."""
        if not self.config.cluster.enabled:
            return "off"
        if self.config.database.backend != "postgres":
            return "off: cluster mode needs PostgreSQL (database.url is SQLite); running every room here"
        return "on"

    def _cluster(self) -> ClusterCoordinator | None:
        self.leases: LeaseGate | None = None
        if self.cluster_mode != "on":
            if self.config.cluster.enabled:
                log.warning("cluster.disabled", reason=self.cluster_mode)
            return None
        cfg = self.config
        self.leases = LeaseGate()
        self.instance = resolve_instance_id(cfg.cluster.instance_id, cfg.cluster.instance_id_file)
        return ClusterCoordinator(
            dsn=self.db_url, instance_id=self.instance,
            rooms=[r.channel for r in cfg.rooms if r.enabled], config=cfg.cluster, bus=self.bus,
            metrics=self.metrics, clock=self.clock,
            on_acquire=self.leases.on_acquire, on_lose=self.leases.on_lose,
        )

    def cluster_status(self) -> dict[str, Any]:
        if self.cluster is None:
            return {"mode": self.cluster_mode}
        snap = self.cluster.snapshot
        return {"mode": "on", "instance_id": snap.instance_id, "instances": snap.instances,
                "leases": snap.leases, "held": sorted(self.cluster.held)}

    def _checks(self) -> list[Any]:
        th = self.config.health.thresholds
        return [
            RoomsCheck(self._room_views, self.rooms.reconnect, self.clock,
                       RoomLimits.from_config(self.config.cytube)),
            DatabaseCheck(self.store.ping, self.clock, th),
            QueueCheck(self.queue_view, self.clock, th),
            BreakersCheck(self.breakers.snapshot, self.clock, th),
            SpoolCheck(self.spool.count, self.clock, th, self.config.spool.max_items),
            PluginsCheck(self.plugins, self.clock),
            ProcessCheck(self.clock, th, self.lag_probe),
            *self._external_checks(),
            *([ClusterCheck(self.cluster, self.clock)] if self.cluster is not None else []),
        ]

    def _external_checks(self) -> list[Any]:
        """CyTube's socketconfig endpoint, once per distinct base URL (rooms with a fixed server
        URL skip discovery, so there is nothing external to watch for them)."""
        cfg = self.config
        if not cfg.health.external_check:
            return []
        discovered = [r.channel for r in cfg.rooms if r.enabled and r.server_url is None]
        if not discovered:
            return []
        return [ExternalCheck(cfg.cytube.base_url, discovered[0], self.clock,
                              interval=cfg.health.external_interval_seconds,
                              timeout=cfg.health.external_timeout_seconds)]

    def _sources(self) -> StatusSources:
        return StatusSources(
            rooms=self._room_views, queue=self.queue_view, dead_letters=self.dead_letters,
            breakers=self.breakers.snapshot, breaker_action=self._breaker_action, replay=self.replay,
            spool=self.spool.count,
            instances=self.cluster.instance_rows if self.cluster is not None else None,
            extra={"plugins": self.plugins.status_list, "cluster": self.cluster_status},
        )

    def _room_views(self) -> list[Any]:
        return [self.rooms.room(name) for name in self.rooms.rooms()]

    async def queue_view(self) -> QueueView:
        rows = await self.store.stats()
        depth: dict[str, int] = {}
        oldest: float | None = None
        for row in rows:
            depth[row.status] = depth.get(row.status, 0) + row.count
            age = row.oldest_pending_age_seconds
            if row.status == "pending" and age is not None:
                oldest = max(oldest or 0.0, float(age))
        dead = await self.store.dead_letters_since(self.clock.now() - timedelta(hours=1))
        return QueueView(depth=depth, oldest_pending_age_seconds=oldest, dead_letters_last_hour=dead,
                         reclaims=self.queue.stats.get("reclaimed", 0))

    async def dead_letters(self, limit: int) -> Sequence[DeadLetterView]:
        items = await self.store.list(status="dead_letter", limit=limit)
        return [DeadLetterView(i.id, i.operation_type, i.correlation_id, i.attempt, i.last_error,
                               i.updated_at.astimezone(UTC).isoformat()) for i in items]

    def _breaker_action(self, name: str, action: str) -> None:
        self.breakers.act(name, action)

    async def replay(self, item_id: int) -> bool:
        moved = await self.store.requeue(ids=[item_id])
        self.queue.wake()
        return moved > 0

    async def _on_delivered(self, event: Any) -> None:
        # The echo confirmed the line: its journal item (if the outbox has not acked it itself)
        # must not be run by the queue.
        key = event.data.get("key") if isinstance(event.data, dict) else None
        if key:
            await self.journal.ack(str(key))

    async def status_line(self) -> str:
        """The one-line summary ``!status`` prints: the health verdict, rooms, queue, breakers."""
        report = self.monitor.latest()
        parts: list[str] = []
        if report is not None:
            parts.append(report.status.value)
        rooms = ", ".join(f"{n} {self.rooms.room(n).state.value}" for n in self.rooms.rooms())
        parts.append(f"rooms: {rooms or 'none'}")
        try:
            view = await self.queue_view()
            parts.append(f"queue: {view.depth.get('pending', 0)} pending, "
                         f"{view.depth.get('dead_letter', 0)} dead")
        except DazError:
            parts.append("queue: store unreachable")
        open_breakers = [b.get("name") for b in self.breakers.snapshot() if b.get("state") != "closed"]
        parts.append(f"breakers: {', '.join(map(str, open_breakers)) or 'all closed'}")
        bad = [n for n, v in self.plugins.verdicts().items() if v != "pass"]
        if bad:
            parts.append(f"plugins degraded: {', '.join(bad)}")
        return "; ".join(parts)

    def services(self) -> list[Service]:
        services: list[Service] = [self.sql, self.queue, self.spool_drainer, self.gate, self.rooms,
                                   self.monitor, self.plugins]
        if self.cluster is not None:
            services.append(self.cluster)
        if self.handoff is not None:
            services.append(self.handoff)
        if self.health_server is not None:
            services.append(self.health_server)
        return services

    async def run(self, stopping: asyncio.Event) -> None:
        """Run every service until ``stopping`` is set, then drain within the grace period."""
        self.started.set()
        await serve(self.services(), stopping=stopping, grace_seconds=self.options.stop_grace_seconds,
                    clock=self.clock)
        await self.bus.drain(timeout=2.0)


def _default_transport_factory() -> TransportFactory:
    return socketio_transport_factory

