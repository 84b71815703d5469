"""The SQLite connector: the one place daz opens a SQLite file (stdlib ``sqlite3``) and the one way it
reaches one from asyncio (``SqliteDatabase``: a connection owned by one thread). The retry store, the
local spool, the SQL service and the migrations all use it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from daz.errors import StoreUnavailable

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
Synchronous = Literal["NORMAL", "FULL"]


class DatabaseClosed(StoreUnavailable):
    """A call on a ``SqliteDatabase`` after ``close()`` (shutdown raced the caller): retryable."""


def connect(
    path: Path | str,
    *,
    busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    synchronous: Synchronous = "NORMAL",
) -> sqlite3.Connection:
    """Autocommit (transactions are explicit ``BEGIN IMMEDIATE``), WAL, foreign keys on.

    ``synchronous=FULL`` for a file whose every commit must survive power loss (the spool);
    ``NORMAL`` (safe in WAL against a process crash) elsewhere. The connection may be used from
    another thread than the one that opened it, one thread at a time (the caller serializes).
    """
    conn = sqlite3.connect(str(path), timeout=busy_timeout_seconds, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteDatabase:
    """One SQLite file through one connection owned by one thread: the one way daz reaches SQLite.

    ``run(fn, *args)`` calls ``fn(connection, *args)`` on the owner thread, so a caller that needs a
    whole transaction (the retry store's claim: three statements) pays one thread hop for it, where
    a per-statement driver (aiosqlite) paid one per statement. The connection opens on first use.
    Driver errors propagate untranslated (callers use ``daz.db.errors.translate``); after ``close()``
    a call raises ``DatabaseClosed``.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
        synchronous: Synchronous = "NORMAL",
        setup: Callable[[sqlite3.Connection], None] | None = None,
        thread_name: str = "daz-sqlite",
        create_parent: bool = False,
    ) -> None:
        self.path = Path(path)
        self._create_parent = create_parent
        self._busy_timeout_seconds = busy_timeout_seconds
        self._synchronous: Synchronous = synchronous
        self._setup = setup
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._conn: sqlite3.Connection | None = None  # touched only on the owner thread
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self._create_parent:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, busy_timeout_seconds=self._busy_timeout_seconds,
                           synchronous=self._synchronous)
            if self._setup is not None:
                try:
                    self._setup(conn)
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        return fn(self._connection(), *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the owner thread."""
        if self._closed:
            raise DatabaseClosed(f"SQLite database {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn, args)
        except RuntimeError as exc:  # the executor shut down under us (close() raced this call)
            if self._closed:
                raise DatabaseClosed(f"SQLite database {self.path} is closed") from exc
            raise

    async def open(self) -> None:
        """Open the connection now (a bad path fails here rather than at the first statement)."""
        await self.run(_nothing)

    async def close(self) -> None:
        """Close the connection on its thread, then stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_connection)
        finally:
            self._executor.shutdown(wait=True)

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _nothing(_: sqlite3.Connection) -> None:
    return None
