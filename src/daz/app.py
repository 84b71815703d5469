"""The composition root: configuration in, a running bot out. Wiring only, no behaviour.

``DazApp`` builds every part from a ``DazConfig`` in dependency order, each given its collaborators
in its constructor (``_build``, read top to bottom), owns their resources in one ``AsyncExitStack``
(store, SQL backend, event bus, spool) and runs their services under ``lifecycle.serve``. Lower
packages that must reach up (the retry queue re-running SQL operations and undelivered chat lines;
health reading rooms, queue, breakers, plugins) get handlers, checks and views passed in here, so no
lower package imports a higher one. What the parts do lives beside them: the plugins check in
``plugins/health.py``, the ``!status`` line in ``plugins/commands.py``, the status views in
``status_views.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from daz.clock import Clock, SystemClock
from daz.cluster.coordinator import ClusterCoordinator
from daz.cluster.gate import LeaseGate
from daz.cluster.health import ClusterCheck
from daz.cluster.identity import resolve_instance_id
from daz.cluster.plan import DEFAULT_SERVER
from daz.config import DazConfig
from daz.cytube.handoff import HandoffPuller
from daz.cytube.journal import CYTUBE_COMMAND, LineRedelivery, RoomAvailabilityGate, StoreJournal
from daz.cytube.room_actions import RoomActions
from daz.cytube.rooms import RoomManager
from daz.cytube.scheduler import server_key
from daz.db.postgres import PgDatabase
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
from daz.health.sources import PoolView
from daz.health.status import StatusBoard
from daz.lifecycle import Service, serve
from daz.metrics import DazMetrics
from daz.plugins.commands import StatusLine
from daz.plugins.health import PluginsCheck
from daz.plugins.host import PluginFactory, PluginHost, RestartPolicy
from daz.plugins.states import PluginStatuses
from daz.resilience.gate import BreakerGate
from daz.resilience.registry import BreakerRegistry
from daz.retry.budget import RetryBudget
from daz.retry.queue import RetryQueue
from daz.retry.spool import Spool, SpoolDrainer
from daz.sql.service import SqlService
from daz.status_views import BotViews
from daz.store import open_store
from daz.store.base import RetryStore
from daz.store.dbclock import DatabaseClock, DatabaseClockSync
from daz.store.migrate import migrate
from daz.transport.base import TransportFactory
from daz.transport.socketio import socketio_transport_factory

log = structlog.get_logger("daz.app")

DEFAULT_STOP_GRACE_SECONDS = 10.0


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


@dataclass(frozen=True)
class AppParts:
    """Every part of a running bot, built once by ``DazApp`` in dependency order."""

    migrated: list[int]
    database: PgDatabase | None  # PostgreSQL only: the one pool, shared by the store and the SQL service
    store: RetryStore
    bus: EventBus
    breakers: BreakerRegistry
    gate: BreakerGate
    spool: Spool
    cluster: ClusterCoordinator | None
    handoff: HandoffPuller | None
    journal: StoreJournal
    rooms: RoomManager
    queue: RetryQueue
    spool_drainer: SpoolDrainer
    sql: SqlService
    views: BotViews
    monitor: HealthMonitor
    plugins: PluginHost
    board: StatusBoard | None
    health_server: HealthServer | None
    clock_sync: DatabaseClockSync | None = None  # PostgreSQL: keeps the queue on the database clock


class DazApp:
    """``async with DazApp(config) as app: await app.run(stopping)``."""

    def __init__(self, config: DazConfig, options: AppOptions | None = None) -> None:
        self.config = config
        self.options = options if options is not None else AppOptions()
        self.clock = self.options.clock
        self.rng = self.options.rng
        self.metrics = self.options.metrics if self.options.metrics is not None else DazMetrics()
        self.started = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._parts: AppParts | None = None

    @property
    def db_url(self) -> str:
        return self.config.database.url.get_secret_value()

    async def __aenter__(self) -> DazApp:
        try:
            self._parts = await self._build()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # the parts (valid inside ``async with``) ---------------------------------------------------
    @property
    def parts(self) -> AppParts:
        if self._parts is None:
            raise DazError("DazApp parts exist only inside `async with DazApp(...)`")
        return self._parts

    @property
    def database(self) -> PgDatabase | None:
        """The one PostgreSQL pool of this process (None on SQLite)."""
        return self.parts.database

    @property
    def migrated(self) -> list[int]:
        return self.parts.migrated

    @property
    def store(self) -> RetryStore:
        return self.parts.store

    @property
    def bus(self) -> EventBus:
        return self.parts.bus

    @property
    def breakers(self) -> BreakerRegistry:
        return self.parts.breakers

    @property
    def spool(self) -> Spool:
        return self.parts.spool

    @property
    def cluster(self) -> ClusterCoordinator | None:
        return self.parts.cluster

    @property
    def journal(self) -> StoreJournal:
        return self.parts.journal

    @property
    def rooms(self) -> RoomManager:
        return self.parts.rooms

    @property
    def queue(self) -> RetryQueue:
        return self.parts.queue

    @property
    def sql(self) -> SqlService:
        return self.parts.sql

    @property
    def monitor(self) -> HealthMonitor:
        return self.parts.monitor

    @property
    def plugins(self) -> PluginHost:
        return self.parts.plugins

    @property
    def board(self) -> StatusBoard | None:
        return self.parts.board

    @property
    def health_server(self) -> HealthServer | None:
        return self.parts.health_server

    # composition -------------------------------------------------------------------------------
    async def _build(self) -> AppParts:
        """Every part in dependency order: each is given its collaborators when it is made."""
        cfg, clock, rng, metrics, stack = self.config, self.clock, self.rng, self.metrics, self._stack
        migrated = await migrate(self.db_url)
        database = await self._database()
        # PostgreSQL: instances on several machines share the queue, so its times (retry_after,
        # lease_until, reclaim) follow the database's clock; SQLite is one machine's process clock.
        queue_clock: Clock = DatabaseClock(clock) if cfg.database.backend == "postgres" else clock
        opened = await open_store(self.db_url, clock=queue_clock, apply_migrations=False, database=database)
        stack.push_async_callback(opened.close)
        clock_sync: DatabaseClockSync | None = None
        if isinstance(queue_clock, DatabaseClock):
            from daz.store.postgres import PostgresStore  # noqa: PLC0415 - asyncpg only when configured

            assert isinstance(opened, PostgresStore)  # noqa: S101 - the backend chose the store
            await queue_clock.sync(opened.database_now)
            clock_sync = DatabaseClockSync(queue_clock, opened.database_now)
        store = self.options.wrap_store(opened) if self.options.wrap_store else opened
        bus = await stack.enter_async_context(EventBus(clock=clock, metrics=metrics))
        breakers = BreakerRegistry(cfg, bus, metrics, clock, rng)
        gate = BreakerGate(breakers, clock=clock, budget=RetryBudget(cfg.retry_budget, clock, metrics),
                           store=store, release_per_second=cfg.retry.breaker_release_per_second,
                           metrics=metrics)
        spool = Spool(cfg.spool.path, max_items=cfg.spool.max_items, metrics=metrics)
        stack.push_async_callback(spool.close)
        leases = LeaseGate() if self.cluster_mode == "on" else None
        cluster = self._cluster(bus, leases)
        policy = cfg.retry.policy_for(CYTUBE_COMMAND)
        hold = self.options.journal_hold_seconds
        journal = StoreJournal(store, queue_clock, max_retries=policy.max_retries,
                               hold_seconds=hold if hold is not None else policy.max_delay_seconds)
        rooms = RoomManager(cfg, bus, metrics, clock, rng,
                            self.options.transport_factory or socketio_transport_factory, journal,
                            leases=leases)
        # Other instances may store lines for the rooms held here; their NOTIFY wakes the puller.
        handoff = HandoffPuller(journal, rooms, clock=clock) if cluster is not None else None
        queue = RetryQueue(store, cfg.retry, bus, metrics, queue_clock, rng,
                           RoomAvailabilityGate(gate, rooms), on_store_unavailable=spool,
                           store_wake_listeners=[handoff.wake] if handoff is not None else [])
        # Items a closed breaker releases (the gate's run loop) wake the queue through the store's
        # wake-ups, as any schedule does, so the gate needs no handle on the queue it gates.
        queue.register(CYTUBE_COMMAND, LineRedelivery(journal, rooms).handle)
        bus.subscribe("room.line.delivered", journal.on_line_delivered, name="app.line_delivered")
        spool_drainer = SpoolDrainer(spool, store, clock=queue_clock, metrics=metrics,
                                     interval_seconds=cfg.spool.drain_interval_seconds, on_drained=queue.wake)
        sql = SqlService(self.db_url, bus, metrics, clock, breakers, queue, cfg.database, rng=rng,
                         database=database)
        await sql.start()
        stack.push_async_callback(sql.close)
        plugin_statuses = PluginStatuses(clock)
        views = BotViews(store=store, queue=queue, rooms=rooms, breakers=breakers, spool=spool,
                         cluster=cluster, cluster_mode=self.cluster_mode, plugins=plugin_statuses,
                         clock=queue_clock)
        lag_probe = LoopLagProbe(clock, cfg.health.loop_lag_interval_seconds, metrics)
        monitor = HealthMonitor(
            self._checks(views, lag_probe, database=database),
            bus, metrics, clock, cfg.health, lag_probe=lag_probe)
        status_line = StatusLine(health=monitor.latest, rooms=views.rooms, queue=views.queue_view,
                                 breakers=breakers.snapshot, plugins=plugin_statuses.verdicts)
        plugins = PluginHost(
            cfg.plugins, bus=bus, clock=clock, metrics=metrics, rng=rng, sql=sql, rooms=rooms,
            actions=RoomActions(rooms), status=status_line, factories=self.options.plugin_factories,
            policy=self.options.plugin_policy, stop_grace_seconds=self.options.stop_grace_seconds,
            statuses=plugin_statuses,
        )
        board: StatusBoard | None = None
        health_server: HealthServer | None = None
        if cfg.health.enabled:
            board = StatusBoard(monitor, views.status_sources(), metrics, clock, cfg.health)
            board.timeline.attach(bus)
            health_server = HealthServer(monitor, board, metrics, cfg.health)
        return AppParts(migrated=migrated, database=database, store=store, bus=bus, breakers=breakers,
                        gate=gate, spool=spool,
                        cluster=cluster, handoff=handoff, journal=journal, rooms=rooms, queue=queue,
                        spool_drainer=spool_drainer, sql=sql, views=views, monitor=monitor, plugins=plugins,
                        board=board, health_server=health_server, clock_sync=clock_sync)

    async def _database(self) -> PgDatabase | None:
        """The PostgreSQL pool the retry store and the SQL service share (None on SQLite), sized by
        ``database.pool``; closed last, after everything that uses it."""
        cfg = self.config.database
        if cfg.backend != "postgres":
            return None
        if cfg.pool.max_size < self.config.retry.worker_count + 1:
            log.warning("db.pool.undersized", max_size=cfg.pool.max_size,
                        worker_count=self.config.retry.worker_count,
                        fix="set database.pool.max_size to at least retry.worker_count + 1")
        database = PgDatabase(self.db_url, cfg, metrics=self.metrics, clock=self.clock, rng=self.rng)
        self._stack.push_async_callback(database.close)
        await database.start(require=cfg.require_database)
        return database

    @property
    def cluster_mode(self) -> str:
        """``on``, ``off``, or why it is off although configured (SQLite is single-machine)."""
        if not self.config.cluster.enabled:
            return "off"
        if self.config.database.backend != "postgres":
            return "off: cluster mode needs PostgreSQL (database.url is SQLite); running every room here"
        return "on"

    def _cluster(self, bus: EventBus, leases: LeaseGate | None) -> ClusterCoordinator | None:
        if leases is None:
            if self.config.cluster.enabled:
                log.warning("cluster.disabled", reason=self.cluster_mode)
            return None
        cfg = self.config
        rooms = [r for r in cfg.rooms if r.enabled]
        # Each room's CyTube server (rooms found by discovery share one entry) and this instance's
        # socket cap there: the planner places rooms where an instance has a free socket.
        server_of = {r.channel: server_key(r.server_url) if r.server_url else DEFAULT_SERVER for r in rooms}
        capacity = {server: cfg.cytube.server_limits(server).max_sockets
                    for server in set(server_of.values())}
        return ClusterCoordinator(
            dsn=self.db_url,
            instance_id=resolve_instance_id(cfg.cluster.instance_id, cfg.cluster.instance_id_file),
            rooms=[r.channel for r in rooms], config=cfg.cluster, bus=bus,
            metrics=self.metrics, clock=self.clock,
            on_acquire=leases.on_acquire, on_lose=leases.on_lose, server_of=server_of, capacity=capacity,
        )

    def _checks(self, views: BotViews, lag_probe: LoopLagProbe, *, database: PgDatabase | None) -> list[Any]:
        """The health checks, reading the parts through ``views`` (the store, rooms, plugin board)."""
        th = self.config.health.thresholds
        cluster = views.cluster
        return [
            RoomsCheck(views.rooms, views.room_manager.reconnect, self.clock,
                       RoomLimits.from_config(self.config.cytube)),
            DatabaseCheck(views.store.ping, self.clock, th,
                          pool=(lambda: pool_view(database)) if database is not None else None,
                          pool_health_threshold=self.config.database.pool.health_score_threshold),
            QueueCheck(views.queue_view, self.clock, th),
            BreakersCheck(views.breakers.snapshot, self.clock, th),
            SpoolCheck(views.spool.count, self.clock, th, self.config.spool.max_items),
            PluginsCheck(views.plugins, self.clock),
            ProcessCheck(self.clock, th, lag_probe),
            *self._external_checks(),
            *([ClusterCheck(cluster, self.clock)] if cluster is not None else []),
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

    # running -----------------------------------------------------------------------------------
    async def replay(self, item_id: int) -> bool:
        """Put dead letter ``item_id`` back in the queue (the status page's replay action)."""
        return await self.parts.views.replay(item_id)

    def services(self) -> list[Service]:
        p = self.parts
        services: list[Service] = [p.sql, p.queue, p.spool_drainer, p.gate, p.rooms, p.monitor, p.plugins]
        if p.database is not None:
            services.append(p.database.pool)  # keepalive, eviction and sizing of the shared pool
        if p.cluster is not None:
            services.append(p.cluster)
        if p.handoff is not None:
            services.append(p.handoff)
        if p.clock_sync is not None:
            services.append(p.clock_sync)
        if p.health_server is not None:
            services.append(p.health_server)
        return services

    async def run(self, stopping: asyncio.Event) -> None:
        """Run every service until ``stopping`` is set, then drain within the grace period."""
        self.started.set()
        await serve(self.services(), stopping=stopping, grace_seconds=self.options.stop_grace_seconds,
                    clock=self.clock)
        await self.bus.drain(timeout=2.0)


def pool_view(database: PgDatabase) -> PoolView:
    """The shared pool's figures for the database check's saturation and connection health."""
    snap = database.pool.snapshot()
    return PoolView(size=snap["size"], in_use=snap["in_use"], waiting=snap["waiting"],
                    max_size=snap["max_size"], health_score_min=snap["health_score_min"],
                    health_score_avg=snap["health_score_avg"])
