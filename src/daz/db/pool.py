"""Connection pool manager for PostgreSQL: warm-up, validation, health scores, eviction, sizing.

Built as a small pool of asyncpg connections rather than on ``asyncpg.Pool``: asyncpg's pool fixes
its size at creation, hides its connections (no per-connection latency, errors or age to score), and
cannot evict one connection while pre-warming its replacement. Those are exactly the features here.

Decisions are pure: ``health_score(stats, now, ...)`` and ``plan(observations, config)`` read
numbers and return numbers; ``PoolManager.apply(plan)`` does the I/O. The manager is a ``Service``
whose loop pings idle connections (keepalive) and re-plans every ``resize_interval_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString

import asyncpg
import structlog

from daz.aio import sleep_or_stop
from daz.clock import Clock
from daz.config import PoolConfig
from daz.db.classify import classify, is_connection_loss
from daz.errors import SqlError
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.db.pool")

LATENCY_REFERENCE_SECONDS = 0.25  # an EWMA latency of this much halves the latency factor
ERROR_WINDOW_SECONDS = 60.0
ERROR_PENALTY = 0.5  # each recent error halves the score
AGE_PENALTY_AT_LIFETIME = 0.5  # a connection at its max lifetime scores half
EWMA_ALPHA = 0.2
GROW_WAIT_SECONDS = 0.005  # mean checkout wait above this means callers are queueing
SHRINK_UTILISATION = 0.5
PING_TIMEOUT_SECONDS = 2.0
_PING: LiteralString = "SELECT 1"

Connector = Callable[[], Awaitable[asyncpg.Connection]]


# pure decisions ----------------------------------------------------------------------------------

@dataclass(slots=True)
class ConnectionStats:
    conn_id: int
    created_at: float
    expires_at: float
    last_used: float
    ewma_latency: float = 0.0
    errors: deque[float] = field(default_factory=deque)

    def record_latency(self, seconds: float) -> None:
        self.ewma_latency = seconds if self.ewma_latency == 0.0 else (
            EWMA_ALPHA * seconds + (1 - EWMA_ALPHA) * self.ewma_latency
        )

    def record_error(self, now: float) -> None:
        self.errors.append(now)
        while self.errors and self.errors[0] < now - ERROR_WINDOW_SECONDS:
            self.errors.popleft()


def health_score(stats: ConnectionStats, now: float, max_lifetime_seconds: float) -> float:
    """0..1: latency factor x error factor x age factor."""
    latency = 1.0 / (1.0 + stats.ewma_latency / LATENCY_REFERENCE_SECONDS)
    recent = sum(1 for t in stats.errors if t >= now - ERROR_WINDOW_SECONDS)
    errors = ERROR_PENALTY ** recent
    age_fraction = min(1.0, max(0.0, now - stats.created_at) / max_lifetime_seconds)
    age = 1.0 - (1.0 - AGE_PENALTY_AT_LIFETIME) * age_fraction
    return latency * errors * age


@dataclass(frozen=True, slots=True)
class ConnectionView:
    conn_id: int
    idle: bool
    score: float
    expired: bool


@dataclass(frozen=True, slots=True)
class PoolObservations:
    """What happened since the last plan."""

    size: int
    in_use: int
    opening: int
    in_use_peak: int
    waiting_peak: int
    mean_wait_seconds: float
    connections: tuple[ConnectionView, ...] = ()


@dataclass(frozen=True, slots=True)
class PoolPlan:
    target_size: int
    evict: tuple[tuple[int, str], ...]  # (conn_id, reason: lifetime | unhealthy | shrink)
    open: int


def plan(obs: PoolObservations, config: PoolConfig) -> PoolPlan:
    """Target size from wait and utilisation, evictions from age and health, openings to reach target."""
    size = obs.size
    if obs.waiting_peak > 0 or obs.mean_wait_seconds > GROW_WAIT_SECONDS:
        target = size + max(1, obs.waiting_peak)
    elif size > 0 and obs.in_use_peak / size < SHRINK_UTILISATION:
        target = size - max(1, (size - obs.in_use_peak) // 2)  # halve the idle surplus per interval
    else:
        target = size
    target = max(config.min_size, min(config.max_size, target))

    evict: list[tuple[int, str]] = []
    for view in obs.connections:
        if view.expired:
            evict.append((view.conn_id, "lifetime"))
        elif view.score < config.health_score_threshold:
            evict.append((view.conn_id, "unhealthy"))
    evicted = {conn_id for conn_id, _ in evict}
    surplus = size - len(evict) - target
    if surplus > 0:
        idle = sorted((v for v in obs.connections if v.idle and v.conn_id not in evicted),
                      key=lambda v: v.score)
        evict.extend((v.conn_id, "shrink") for v in idle[:surplus])
    remaining = size - len(evict) + obs.opening
    return PoolPlan(target_size=target, evict=tuple(evict), open=max(0, target - remaining))


# I/O ---------------------------------------------------------------------------------------------

class PooledConnection:
    """A checked-out connection: every call is timed into the connection's health statistics."""

    def __init__(self, raw: asyncpg.Connection, stats: ConnectionStats, clock: Clock) -> None:
        self.raw = raw
        self.stats = stats
        self._clock = clock
        self.retire = False

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        start = self._clock.monotonic()
        rows = await self.raw.fetch(sql, *args)
        self.stats.record_latency(self._clock.monotonic() - start)
        return rows

    async def execute(self, sql: str, *args: Any) -> str:
        start = self._clock.monotonic()
        status = await self.raw.execute(sql, *args)
        self.stats.record_latency(self._clock.monotonic() - start)
        return status

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        start = self._clock.monotonic()
        await self.raw.executemany(sql, rows)
        self.stats.record_latency((self._clock.monotonic() - start) / max(1, len(rows)))

    def transaction(self, isolation: Any = None) -> Any:
        return self.raw.transaction(isolation=isolation)


class PoolManager:
    """Checkout/release of validated, scored connections; a ``Service`` for keepalive and resizing."""

    name = "db.pool"

    def __init__(
        self,
        connect: Connector,
        config: PoolConfig,
        *,
        metrics: DazMetrics,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._connect = connect
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self._idle: list[PooledConnection] = []  # LIFO: recently used first, the tail ages out
        self._all: dict[int, PooledConnection] = {}
        self._in_use: set[int] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[PooledConnection | None]] = deque()
        self._ids = itertools.count(1)
        self._closed = False
        self._reset_window()

    # observation window ----------------------------------------------------------------------
    def _reset_window(self) -> None:
        self._in_use_peak = len(self._in_use)
        self._waiting_peak = len(self._waiters)
        self._wait_total = 0.0
        self._wait_count = 0

    def observations(self) -> PoolObservations:
        now = self.clock.monotonic()
        views = tuple(
            ConnectionView(
                conn_id=c.stats.conn_id,
                idle=c.stats.conn_id not in self._in_use,
                score=health_score(c.stats, now, self.config.max_lifetime_seconds),
                expired=now >= c.stats.expires_at,
            )
            for c in self._all.values()
        )
        return PoolObservations(
            size=len(self._all), in_use=len(self._in_use), opening=self._opening,
            in_use_peak=self._in_use_peak, waiting_peak=self._waiting_peak,
            mean_wait_seconds=self._wait_total / self._wait_count if self._wait_count else 0.0,
            connections=views,
        )

    @property
    def size(self) -> int:
        return len(self._all)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def snapshot(self) -> dict[str, Any]:
        obs = self.observations()
        scores = [v.score for v in obs.connections]
        return {
            "size": obs.size, "in_use": obs.in_use, "idle": obs.size - obs.in_use,
            "waiting": len(self._waiters), "min_size": self.config.min_size,
            "max_size": self.config.max_size,
            "health_score_min": min(scores, default=None),
            "health_score_avg": sum(scores) / len(scores) if scores else None,
        }

    def _update_gauges(self) -> None:
        self.metrics.pool_size.set(len(self._all))
        self.metrics.pool_in_use.set(len(self._in_use))
        self.metrics.pool_waiting.set(len(self._waiters))

    def _update_scores(self, views: Sequence[ConnectionView]) -> None:
        scores = [v.score for v in views]
        self.metrics.pool_health_score_min.set(min(scores, default=0.0))
        self.metrics.pool_health_score_avg.set(sum(scores) / len(scores) if scores else 0.0)

    # opening and closing ---------------------------------------------------------------------
    async def _open(self) -> PooledConnection:
        self._opening += 1
        try:
            raw = await self._connect()
        finally:
            self._opening -= 1
        now = self.clock.monotonic()
        jitter = 1.0 - self.config.lifetime_jitter * self.rng.random()
        stats = ConnectionStats(
            conn_id=next(self._ids), created_at=now,
            expires_at=now + self.config.max_lifetime_seconds * jitter, last_used=now,
        )
        conn = PooledConnection(raw, stats, self.clock)
        self._all[stats.conn_id] = conn
        self._update_gauges()
        return conn

    async def _discard(self, conn: PooledConnection, reason: str) -> None:
        conn_id = conn.stats.conn_id
        self._all.pop(conn_id, None)
        self._in_use.discard(conn_id)
        if conn in self._idle:
            self._idle.remove(conn)
        if reason != "shutdown":
            self.metrics.pool_evictions.labels(reason=reason).inc()
            log.info("db.pool.evicted", conn_id=conn_id, reason=reason)
        self._update_gauges()
        self._wake_one(None)  # capacity freed: a waiter may open a fresh connection
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.raw.close(), PING_TIMEOUT_SECONDS)
        if not conn.raw.is_closed():
            conn.raw.terminate()

    async def start(self, *, require: bool) -> None:
        """Warm up ``min_size`` connections; unreachable → ``SqlError`` if ``require`` else degraded."""
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(self.config.min_size):
                    tg.create_task(self._warm(), name=f"db.pool.warm.{i}")
        except* Exception as group:  # noqa: BLE001 - any warm-up failure means "unreachable now"
            first = group.exceptions[0]
            if require:
                raise SqlError(
                    f"database unreachable at start-up ({type(first).__name__}); "
                    "database.require_database is set", retryable=True,
                ) from first
            log.warning("db.pool.degraded_start", error=type(first).__name__, size=len(self._all),
                        min_size=self.config.min_size)

    async def _warm(self) -> None:
        conn = await self._open()
        self._idle.append(conn)

    # checkout --------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[PooledConnection]:
        """A validated connection for the block; connection-loss errors discard it on the way out."""
        conn = await self._checkout()
        try:
            yield conn
        except BaseException as exc:
            if is_connection_loss(exc) or isinstance(exc, asyncio.CancelledError):
                # a cancelled statement may still be running on the server: never reuse that socket
                await asyncio.shield(self._discard(conn, "broken"))
            else:
                if classify(exc).retryable:
                    conn.stats.record_error(self.clock.monotonic())
                await self._release(conn)
            raise
        await self._release(conn)

    async def _checkout(self) -> PooledConnection:
        if self._closed:
            raise SqlError("the connection pool is closed", retryable=False)
        start = self.clock.monotonic()
        deadline = start + self.config.acquire_timeout_seconds
        waited = False
        try:
            while True:
                conn = await self._take_idle()
                if conn is None and len(self._all) + self._opening < self.config.max_size:
                    conn = await self._open()
                if conn is None:
                    waited = True
                    conn = await self._wait(deadline)
                    if conn is None:
                        continue
                    if not await self._valid(conn):
                        continue
                self._in_use.add(conn.stats.conn_id)
                self._in_use_peak = max(self._in_use_peak, len(self._in_use))
                self._update_gauges()
                return conn
        finally:
            wait = self.clock.monotonic() - start if waited else 0.0
            self._wait_total += wait
            self._wait_count += 1
            self.metrics.pool_wait.observe(wait)

    async def _take_idle(self) -> PooledConnection | None:
        while self._idle:
            conn = self._idle.pop()
            if await self._valid(conn):
                return conn
        return None

    async def _valid(self, conn: PooledConnection) -> bool:
        now = self.clock.monotonic()
        if conn.raw.is_closed():
            await self._discard(conn, "closed")
            return False
        if now >= conn.stats.expires_at:
            await self._discard(conn, "lifetime")
            return False
        idle_for = now - conn.stats.last_used
        if (self.config.validate_on_checkout and idle_for >= self.config.validation_idle_seconds
                and not await self._ping(conn)):
            await self._discard(conn, "validation")
            return False
        return True

    async def _ping(self, conn: PooledConnection) -> bool:
        start = self.clock.monotonic()
        try:
            await asyncio.wait_for(conn.raw.fetchval(_PING), PING_TIMEOUT_SECONDS)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
            # InternalClientError: a backend killed under an idle connection can leave asyncpg's
            # protocol mid-operation ("cannot switch to state …"); that socket is unusable too.
            conn.stats.record_error(self.clock.monotonic())
            return False
        now = self.clock.monotonic()
        conn.stats.record_latency(now - start)
        conn.stats.last_used = now
        return True

    async def _wait(self, deadline: float) -> PooledConnection | None:
        remaining = deadline - self.clock.monotonic()
        if remaining <= 0:
            raise SqlError(
                f"no database connection free within {self.config.acquire_timeout_seconds}s "
                f"(pool at max_size={self.config.max_size})", retryable=True,
            )
        fut: asyncio.Future[PooledConnection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._waiting_peak = max(self._waiting_peak, len(self._waiters))
        self._update_gauges()
        received = False
        try:
            async with asyncio.timeout(remaining):
                result = await fut
            received = True
        except TimeoutError as exc:
            raise SqlError(
                f"no database connection free within {self.config.acquire_timeout_seconds}s "
                f"(pool at max_size={self.config.max_size})", retryable=True,
            ) from exc
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            if not received and fut.done() and not fut.cancelled() and fut.exception() is None:
                handed = fut.result()
                if handed is not None:
                    self._return_idle(handed)  # handed over just as we timed out or were cancelled
            self._update_gauges()
        return result

    def _wake_one(self, conn: PooledConnection | None) -> bool:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return True
        return False

    def _return_idle(self, conn: PooledConnection) -> None:
        if not self._wake_one(conn):
            self._idle.append(conn)

    async def _release(self, conn: PooledConnection) -> None:
        self._in_use.discard(conn.stats.conn_id)
        conn.stats.last_used = self.clock.monotonic()
        self._update_gauges()
        if self._closed:
            await self._discard(conn, "shutdown")
            return
        if conn.retire or conn.raw.is_closed():
            await self._discard(conn, "retired" if conn.retire else "closed")
            return
        self._return_idle(conn)

    # maintenance -----------------------------------------------------------------------------
    async def keepalive(self) -> None:
        """Ping connections idle longer than the keepalive interval; evict the ones that fail."""
        now = self.clock.monotonic()
        stale = [c for c in self._idle if now - c.stats.last_used >= self.config.keepalive_interval_seconds]
        for conn in stale:
            if conn not in self._idle:
                continue
            self._idle.remove(conn)
            self._in_use.add(conn.stats.conn_id)  # reserved while pinging so nobody checks it out
            ok = await self._ping(conn)
            self._in_use.discard(conn.stats.conn_id)
            if ok:
                self._return_idle(conn)
            else:
                await self._discard(conn, "keepalive")

    async def apply(self, decided: PoolPlan) -> None:
        """Open replacements first (pre-warmed), then close evicted idle connections."""
        for _ in range(decided.open):
            try:
                fresh = await self._open()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("db.pool.open_failed", error=type(exc).__name__, size=len(self._all))
                break
            self._return_idle(fresh)
        for conn_id, reason in decided.evict:
            conn = self._all.get(conn_id)
            if conn is None:
                continue
            if conn_id in self._in_use:
                conn.retire = True  # closed when its holder releases it
            else:
                await self._discard(conn, reason)

    async def maintain(self) -> PoolPlan:
        """One keepalive + plan + apply round."""
        await self.keepalive()
        obs = self.observations()
        self._update_scores(obs.connections)
        decided = plan(obs, self.config)
        self._reset_window()
        if decided.open or decided.evict:
            log.debug("db.pool.plan", size=obs.size, target=decided.target_size,
                      open=decided.open, evict=len(decided.evict))
        await self.apply(decided)
        return decided

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await sleep_or_stop(self.clock, self.config.resize_interval_seconds, stopping)
            if stopping.is_set():
                break
            await self.maintain()

    async def close(self) -> None:
        self._closed = True
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(SqlError("the connection pool is closed", retryable=False))
        # In parallel: each close is bounded by PING_TIMEOUT_SECONDS, so a black-holed server costs
        # the shutdown that once, not once per connection.
        await asyncio.gather(*(self._discard(conn, "shutdown") for conn in list(self._idle)))
        for conn in list(self._all.values()):
            conn.retire = True
