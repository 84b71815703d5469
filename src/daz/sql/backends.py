"""The SQL service's sessions over the two connectors in ``daz.db``: PostgreSQL (the shared pool) and SQLite.

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

import structlog

from daz.clock import Clock
from daz.config import DatabaseConfig
from daz.db.classify import DRIVER_ERRORS
from daz.db.errors import describe
from daz.db.pool import PooledConnection
from daz.db.postgres import PgDatabase
from daz.db.sqlite import SqliteDatabase
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
    """Sessions on the process's ``PgDatabase`` pool (shared with the retry store when ``app.py`` passes
    one in; ``owns_db`` when the plugin opened it alone, and then starts, maintains and closes it)."""

    kind = "postgres"

    def __init__(self, db: PgDatabase, *, owns_db: bool) -> None:
        self.db = db
        self.pool = db.pool
        self.owns_db = owns_db

    async def start(self, *, require: bool) -> None:
        if self.owns_db:
            await self.db.start(require=require)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self.db.acquire() as conn:
            yield PgSession(conn)

    async def close(self) -> None:
        if self.owns_db:
            await self.db.close()


# SQLite ------------------------------------------------------------------------------------------

_BEGIN: LiteralString = "BEGIN IMMEDIATE"
_COMMIT: LiteralString = "COMMIT"
_ROLLBACK: LiteralString = "ROLLBACK"


def _fetch(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Row]:
    cursor = conn.execute(sql, args)
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _execute(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
    return max(0, conn.execute(sql, args).rowcount)


def _executemany(conn: sqlite3.Connection, sql: str, rows: list[Sequence[Any]]) -> None:
    conn.executemany(sql, rows)


class SqliteSession:
    """Statements on the backend's ``SqliteDatabase``, one thread hop each (a plugin's transaction
    spans awaits between its statements)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self._in_tx = False

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        text, args = bind_qmark(sql, params)
        return await self.db.run(_fetch, text, args)

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        text, args = bind_qmark(sql, params)
        return await self.db.run(_execute, text, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        bound = [bind_qmark(sql, r) for r in rows]
        if not bound:
            return 0
        await self.db.run(_executemany, bound[0][0], [args for _, args in bound])
        return len(rows)

    @contextlib.asynccontextmanager
    async def transaction(self, isolation: Isolation | None = None) -> AsyncIterator[None]:
        # SQLite transactions are serializable whatever is asked: one writer at a time.
        if self._in_tx:  # nested use joins the outer transaction
            yield
            return
        await self.db.run(_execute, _BEGIN, ())
        self._in_tx = True
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.db.run(_execute, _ROLLBACK, ()))
            raise
        else:
            await self.db.run(_execute, _COMMIT, ())
        finally:
            self._in_tx = False


class SqliteBackend:
    """One connection on its own thread (``daz.db.sqlite.SqliteDatabase``; SQLite has one writer
    anyway), one session at a time."""

    kind = "sqlite"

    def __init__(self, path: Path, config: DatabaseConfig) -> None:
        self._path = path
        # synchronous=FULL: an exec that returned survives power loss, as with SQLite's default.
        self._db = SqliteDatabase(path, busy_timeout_seconds=config.sqlite_busy_timeout_seconds,
                                  synchronous="FULL", thread_name="daz-sql-sqlite")
        self._lock = asyncio.Lock()

    async def start(self, *, require: bool) -> None:
        try:
            await self._db.open()
        except DRIVER_ERRORS as exc:
            if require:
                raise SqlError(f"cannot open SQLite database {self._path} ({describe(exc)}); "
                               "database.require_database is set", retryable=False) from exc
            log.warning("sql.sqlite.degraded_start", path=str(self._path), error=type(exc).__name__)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self._lock:
            yield SqliteSession(self._db)

    async def close(self) -> None:
        await self._db.close()


def open_backend(url: str, config: DatabaseConfig, *, metrics: DazMetrics, clock: Clock,
                 rng: random.Random | None = None, database: PgDatabase | None = None) -> Backend:
    """The backend for ``url``; on PostgreSQL over ``database`` (shared) or a pool of its own."""
    if database is not None:
        return PostgresBackend(database, owns_db=False)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(PgDatabase(url, config, metrics=metrics, clock=clock, rng=rng), owns_db=True)
    raw = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url.removeprefix("sqlite://")
    return SqliteBackend(Path(raw or "daz.db"), config)
