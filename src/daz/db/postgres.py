"""The PostgreSQL connector: one ``PgDatabase`` per database (DSN) per process.

Every caller reaches PostgreSQL through it: the retry store and the SQL service share its pool
(``daz.db.pool.PoolManager``, sized by ``database.pool``); two kinds of connection are dedicated,
opened by ``connect()`` with the same settings but never taken from the pool:

- the store's LISTEN connection (``listen()``): a LISTEN lives in the session, must stay open between
  notifications and would be lost the moment a pooled connection was handed to someone else;
- the cluster coordinator's lease connection: renewing leases must never queue behind plugin
  queries in a saturated pool, since a renewal later than the lease makes this instance leave its
  rooms.

Migrations also use one short-lived ``connect()`` connection: they run before the pool is warmed (and
from the CLI, where there is no pool) under a transaction-scoped advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import asyncpg
import structlog
from pydantic import SecretStr

from daz.backoff import full_jitter
from daz.clock import Clock, SystemClock
from daz.config import DatabaseConfig, PoolConfig
from daz.db.classify import DRIVER_ERRORS
from daz.db.pool import PooledConnection, PoolManager
from daz.metrics import DazMetrics

log = structlog.get_logger("daz.db")

LISTEN_RETRY_BASE_SECONDS = 0.5
LISTEN_RETRY_CAP_SECONDS = 30.0
LISTEN_CLOSE_TIMEOUT_SECONDS = 2.0
# The client's own bound on a statement, as a multiple of the server's statement_timeout (with the
# default 30 s: 60 s, what the retry store's asyncpg pool used before it shared this one).
CLIENT_TIMEOUT_FACTOR = 2.0


async def connect(
    dsn: str,
    *,
    timeout: float,
    statement_timeout_seconds: float | None = None,
    server_settings: Mapping[str, str] | None = None,
) -> asyncpg.Connection:
    """A new connection; driver errors propagate (callers wrap this in ``daz.db.errors.translate``).

    With ``statement_timeout_seconds`` the server cancels a statement after it (57014, retryable),
    and the client gives up after twice that (asyncpg's ``command_timeout``, a ``TimeoutError``
    that discards the connection): a server that stopped answering (a black-holed network) cannot
    hang a caller, and one that answers always fires first.
    """
    settings = dict(server_settings or {})
    command_timeout: float | None = None
    if statement_timeout_seconds is not None:
        settings["statement_timeout"] = str(int(statement_timeout_seconds * 1000))
        command_timeout = CLIENT_TIMEOUT_FACTOR * statement_timeout_seconds
    return await asyncpg.connect(dsn, timeout=timeout, command_timeout=command_timeout,
                                 server_settings=settings or None)


class PgDatabase:
    """The pool every caller of one PostgreSQL database shares, and its dedicated connections.

    ``fetch``/``fetchrow``/``fetchval``/``execute`` check a connection out for one statement;
    ``acquire()`` holds one for several (a transaction). Driver errors propagate untranslated: each
    caller translates them into its own vocabulary with ``daz.db.errors``.
    """

    def __init__(
        self,
        dsn: str,
        config: DatabaseConfig,
        *,
        metrics: DazMetrics,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.dsn = dsn
        self.config = config
        self.pool = PoolManager(self.connect, config.pool, metrics=metrics, clock=clock, rng=rng)

    @classmethod
    def standalone(cls, dsn: str, *, min_size: int, max_size: int) -> PgDatabase:
        """Default settings and a private metrics registry, for a process without an app (CLI,
        benchmarks, tests). Its pool keeps real time: it times real connections."""
        config = DatabaseConfig(url=SecretStr(dsn), pool=PoolConfig(min_size=min_size, max_size=max_size))
        return cls(dsn, config, metrics=DazMetrics(), clock=SystemClock())

    async def connect(self) -> asyncpg.Connection:
        """A new connection with the configured timeouts (the pool's, or a dedicated one)."""
        return await connect(self.dsn, timeout=self.config.connect_timeout_seconds,
                             statement_timeout_seconds=self.config.statement_timeout_seconds)

    async def start(self, *, require: bool) -> None:
        """Warm the pool; unreachable → ``SqlError`` if ``require``, else a degraded start."""
        await self.pool.start(require=require)

    def acquire(self) -> contextlib.AbstractAsyncContextManager[PooledConnection]:
        return self.pool.acquire()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.pool.acquire() as conn:
            return await conn.execute(sql, *args)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str, on_notify: Callable[[], None]) -> AsyncIterator[None]:
        """While entered, call ``on_notify`` on every NOTIFY on ``channel`` (and once per (re)connect,
        since anything sent while no connection listened was missed), on a dedicated connection that
        is re-opened with jittered backoff whenever it is lost."""
        async with asyncio.TaskGroup() as group:
            task = group.create_task(self._listen(channel, on_notify), name="db.postgres.listen")
            try:
                yield
            finally:
                task.cancel()

    async def _listen(self, channel: str, on_notify: Callable[[], None]) -> None:
        rng = random.Random()
        failures = 0
        while True:
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def notified(*_: object) -> None:
                on_notify()

            def on_lost(*_: object, fut: asyncio.Future[None] = lost) -> None:
                if not fut.done():
                    fut.set_result(None)

            try:
                conn = await self.connect()
            except DRIVER_ERRORS as exc:
                failures += 1
                delay = full_jitter(failures, rng, base=LISTEN_RETRY_BASE_SECONDS, multiplier=2.0,
                                    cap=LISTEN_RETRY_CAP_SECONDS)
                log.warning("db.listen_failed", channel=channel, error=type(exc).__name__,
                            retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            try:
                conn.add_termination_listener(on_lost)
                await conn.add_listener(channel, notified)
                failures = 0
                on_notify()  # anything sent while we were not listening is now claimable
                await lost
                log.warning("db.listen_lost", channel=channel)
            except DRIVER_ERRORS as exc:
                log.warning("db.listen_lost", channel=channel, error=type(exc).__name__)
            finally:
                if not conn.is_closed():
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await conn.close(timeout=LISTEN_CLOSE_TIMEOUT_SECONDS)

    async def close(self) -> None:
        await self.pool.close()
