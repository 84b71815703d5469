"""The two drivers behind one small interface: asyncpg (through the pool manager) and aiosqlite.

A ``Session`` is one connection held for one operation or one transaction. Statements always use
``$n`` placeholders; the SQLite session rewrites them (``statements.bind_qmark``). Rows come back as
plain ``dict``s on both backends so callers never depend on a driver's record type.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal, LiteralString, Protocol

import aiosqlite
import asyncpg
import structlog

from daz.clock import Clock
from daz.config import DatabaseConfig
from daz.db.pool import PooledConnection, PoolManager
from daz.errors import SqlError
from daz.metrics import DazMetrics
from daz.sql.statements import bind_qmark

log = structlog.get_logger("daz.sql")

Row = dict[str, Any]
Isolation = Literal["read_committed", "repeatable_read", "serializable"]


class Session(Protocol):
    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]: ...
    async def execute(self, sql: str, params: Sequence[Any]) -> int: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...
    def transaction(self, isolation: Isolation | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        ...


class Backend(Protocol):
    kind: str

    async def start(self, *, require: bool) -> None: ...
    def session(self) -> contextlib.AbstractAsyncContextManager[Session]: ...
    async def close(self) -> None: ...


def rows_affected(status: str) -> int:
    """asyncpg's command tag (``INSERT 0 3``, ``UPDATE 2``) → the count; 0 when it has none."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


# PostgreSQL --------------------------------------------------------------------------------------

class PgSession:
    def __init__(self, conn: PooledConnection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return [dict(r) for r in await self.conn.fetch(sql, *params)]

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        return rows_affected(await self.conn.execute(sql, *params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        await self.conn.executemany(sql, rows)
        return len(rows)

    @contextlib.asynccontextmanager
    async def transaction(self, isolation: Isolation | None = None) -> AsyncIterator[None]:
        async with self.conn.transaction(isolation=isolation):
            yield


class PostgresBackend:
    kind = "postgres"

    def __init__(self, dsn: str, config: DatabaseConfig, *, metrics: DazMetrics, clock: Clock,
                 rng: random.Random | None = None) -> None:
        self._dsn = dsn
        self._config = config
        settings = {"statement_timeout": str(int(config.statement_timeout_seconds * 1000))}

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(dsn, timeout=config.connect_timeout_seconds,
                                         server_settings=settings)

        self.pool = PoolManager(connect, config.pool, metrics=metrics, clock=clock, rng=rng)

    async def start(self, *, require: bool) -> None:
        await self.pool.start(require=require)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self.pool.acquire() as conn:
            yield PgSession(conn)

    async def close(self) -> None:
        await self.pool.close()


# SQLite ------------------------------------------------------------------------------------------

_BEGIN: LiteralString = "BEGIN IMMEDIATE"
_COMMIT: LiteralString = "COMMIT"
_ROLLBACK: LiteralString = "ROLLBACK"


class SqliteSession:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._in_tx = False

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        text, args = bind_qmark(sql, params)
        async with self.conn.execute(text, args) as cursor:
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        text, args = bind_qmark(sql, params)
        async with self.conn.execute(text, args) as cursor:
            return max(0, cursor.rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        bound = [bind_qmark(sql, r) for r in rows]
        if not bound:
            return 0
        await self.conn.executemany(bound[0][0], [args for _, args in bound])
        return len(rows)

    @contextlib.asynccontextmanager
    async def transaction(self, isolation: Isolation | None = None) -> AsyncIterator[None]:
        # SQLite transactions are serializable whatever is asked: one writer at a time.
        if self._in_tx:  # nested use joins the outer transaction
            yield
            return
        await self.conn.execute(_BEGIN)
        self._in_tx = True
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.conn.execute(_ROLLBACK))
            raise
        else:
            await self.conn.execute(_COMMIT)
        finally:
            self._in_tx = False


class SqliteBackend:
    """One aiosqlite connection (SQLite has one writer anyway), one operation at a time."""

    kind = "sqlite"

    def __init__(self, path: Path, config: DatabaseConfig) -> None:
        self._path = path
        self._config = config
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def start(self, *, require: bool) -> None:
        try:
            await self._open()
        except (sqlite3.Error, OSError) as exc:
            if require:
                raise SqlError(f"cannot open SQLite database {self._path} ({type(exc).__name__}: {exc}); "
                               "database.require_database is set", retryable=False) from exc
            log.warning("sql.sqlite.degraded_start", path=str(self._path), error=type(exc).__name__)

    async def _open(self) -> aiosqlite.Connection:
        if self._conn is None:
            conn = await aiosqlite.connect(str(self._path), isolation_level=None,
                                           timeout=self._config.sqlite_busy_timeout_seconds)
            busy_ms = int(self._config.sqlite_busy_timeout_seconds * 1000)
            await conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            self._conn = conn
        return self._conn

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self._lock:
            conn = await self._open()
            yield SqliteSession(conn)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def open_backend(url: str, config: DatabaseConfig, *, metrics: DazMetrics, clock: Clock,
                 rng: random.Random | None = None) -> Backend:
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url, config, metrics=metrics, clock=clock, rng=rng)
    raw = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url.removeprefix("sqlite://")
    return SqliteBackend(Path(raw or "daz.db"), config)
