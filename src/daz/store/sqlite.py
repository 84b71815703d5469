"""SQLite retry store: the embedded default (WAL, one file, safe across processes).

Every operation is one synchronous function run on a dedicated single thread that owns the
connection, so a whole claim transaction costs one thread hop. (aiosqlite hops once per statement;
the issue suggested it, but a claim is three statements and the hops dominated the drain rate.)
Writers serialize on ``BEGIN IMMEDIATE``; other processes wait up to the busy timeout.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, LiteralString, TypeVar

from daz.clock import Clock, SystemClock
from daz.db.errors import translate
from daz.db.sqlite import connect as sqlite_connect
from daz.errors import ItemNotFound, StaleFence, StoreError, StoreUnavailable
from daz.store.base import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    TERMINAL_STATUSES,
    ClaimedSchedule,
    NewItem,
    QueueItem,
    StatsRow,
    Status,
    WakeCallback,
    validate_status,
)

T = TypeVar("T")

_COLUMNS: Final[LiteralString] = (
    "id, correlation_id, idempotency_key, operation_type, target, event_type, payload, status, "
    "priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds, "
    "last_error, created_at, updated_at, deferred_by"
)
_INSERT: Final[LiteralString] = """
INSERT INTO daz_retry_queue (correlation_id, idempotency_key, operation_type, target, event_type, payload,
                             priority, max_retries, retry_after, timeout_seconds, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
"""
# The hand-off: the row a claim would leave (processing, fence 1, leased).
_INSERT_CLAIMED: Final[LiteralString] = """
INSERT INTO daz_retry_queue (correlation_id, idempotency_key, operation_type, target, event_type, payload,
                             priority, max_retries, retry_after, timeout_seconds, created_at, updated_at,
                             status, fence, lease_until, lease_owner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'processing', 1, ?, ?)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING """ + _COLUMNS
_FILTERS: Final[LiteralString] = (
    " AND (? IS NULL OR operation_type IN (SELECT value FROM json_each(?)))"
    " AND (? IS NULL OR target IS NULL OR target IN (SELECT value FROM json_each(?)))"
)
_CLAIM_EXPIRED: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET status = 'processing', fence = fence + 1, lease_until = ?, lease_owner = ?,"
    " updated_at = ? WHERE id IN (SELECT id FROM daz_retry_queue"
    " WHERE status = 'processing' AND lease_until < ?" + _FILTERS + " ORDER BY lease_until LIMIT ?)"
    " RETURNING " + _COLUMNS
)
_CLAIM_DUE: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET status = 'processing', fence = fence + 1, lease_until = ?, lease_owner = ?,"
    " updated_at = ? WHERE id IN (SELECT id FROM daz_retry_queue"
    " WHERE status = 'pending' AND retry_after <= ?" + _FILTERS
    + " ORDER BY priority DESC, retry_after, id LIMIT ?)"
    " RETURNING " + _COLUMNS
)
_OWNED: Final[LiteralString] = "id = ? AND fence = ? AND status = 'processing'"
_COMPLETE_MANY: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET status = 'completed', lease_until = NULL, lease_owner = NULL, updated_at = ?"
    " WHERE status = 'processing' AND (id, fence) IN"
    " (SELECT value ->> 0, value ->> 1 FROM json_each(?)) RETURNING id"
)
_HEARTBEAT: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET lease_until = ?, updated_at = ? WHERE " + _OWNED
)
_RESCHEDULE: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET status = 'pending', retry_after = ?, last_error = coalesce(?, last_error),"
    " attempt = attempt + ?, lease_until = NULL, lease_owner = NULL, deferred_by = ?, updated_at = ?"
    " WHERE " + _OWNED
)
_DEAD_LETTER: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET status = 'dead_letter', last_error = ?, attempt = attempt + 1,"
    " lease_until = NULL, lease_owner = NULL, deferred_by = NULL, updated_at = ? WHERE " + _OWNED
)
_REQUEUE: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET status = 'pending', attempt = 0, retry_after = ?, lease_until = NULL,"
    " lease_owner = NULL, deferred_by = NULL, updated_at = ?"
    " WHERE status IN ('dead_letter', 'failed')"
    " AND (? OR id IN (SELECT value FROM json_each(?)) OR operation_type = ?)"
)
_RELEASE_DEFERRED: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET retry_after = ?, deferred_by = NULL, updated_at = ?"
    " WHERE id IN (SELECT id FROM daz_retry_queue WHERE status = 'pending' AND deferred_by = ?"
    " ORDER BY retry_after, id LIMIT ?)"
)
_ACK_PENDING: Final[LiteralString] = (
    "UPDATE daz_retry_queue SET status = 'completed', updated_at = ?"
    " WHERE idempotency_key = ? AND status = 'pending'"
)
_PURGE: Final[LiteralString] = (
    "DELETE FROM daz_retry_queue WHERE status IN (SELECT value FROM json_each(?)) AND updated_at < ?"
)
_STATS: Final[LiteralString] = (
    "SELECT operation_type, status, count, avg_attempts, max_attempts, oldest_created_at"
    " FROM daz_retry_queue_stats ORDER BY operation_type, status"
)
_GET: Final[LiteralString] = "SELECT " + _COLUMNS + " FROM daz_retry_queue WHERE id = ?"
_LIST: Final[LiteralString] = (
    "SELECT " + _COLUMNS + " FROM daz_retry_queue WHERE (? IS NULL OR status = ?)"
    " AND (? IS NULL OR operation_type = ?) ORDER BY id LIMIT ?"
)
_IDS_BY_KEY: Final[LiteralString] = "SELECT id FROM daz_retry_queue WHERE idempotency_key = ?"
_NEXT_DUE: Final[LiteralString] = (
    "SELECT min(m) FROM (SELECT min(retry_after) AS m FROM daz_retry_queue WHERE status = 'pending'"
    " UNION ALL SELECT min(lease_until) FROM daz_retry_queue WHERE status = 'processing')"
)


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _item(r: Sequence[Any], reclaimed: bool = False) -> QueueItem:
    return QueueItem(
        r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], r[10],
        datetime.fromtimestamp(r[11], UTC), _dt(r[12]), r[13], r[14], r[15], r[16],
        datetime.fromtimestamp(r[17], UTC), datetime.fromtimestamp(r[18], UTC), r[19], reclaimed,
    )


def _row(it: NewItem, now: float) -> tuple[Any, ...]:
    return (
        it.correlation_id or uuid.uuid4().hex, it.idempotency_key, it.operation_type, it.target,
        it.event_type, json.dumps(it.payload), it.priority,
        it.max_retries if it.max_retries is not None else DEFAULT_MAX_RETRIES,
        _ts(it.retry_after) if it.retry_after is not None else now,
        it.timeout_seconds or DEFAULT_TIMEOUT_SECONDS, now, now,
    )


def _filters(operation_types: Sequence[str] | None, targets: Sequence[str] | None) -> tuple[Any, ...]:
    ops = json.dumps(builtins.list(operation_types)) if operation_types is not None else None
    tgs = json.dumps(builtins.list(targets)) if targets is not None else None
    return ops, ops, tgs, tgs


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteStore:
    """``RetryStore`` on one SQLite file. Create with ``await SqliteStore.open(path)``."""

    backend = "sqlite"

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="daz-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._listeners: list[WakeCallback] = []

    @classmethod
    async def open(cls, path: Path | str, *, clock: Clock | None = None) -> SqliteStore:
        store = cls(Path(path), clock if clock is not None else SystemClock())
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        self._conn = sqlite_connect(self.path)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            # One translation for every backend: a busy or unreachable file is StoreUnavailable, a
            # bad statement (SQLITE_ERROR) a non-retryable StoreError, never an outage.
            with translate(f"SQLite {self.path}"):
                return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except RuntimeError as exc:  # the executor was shut down by close()
            raise StoreUnavailable(f"SQLite store {self.path} is closed") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable(f"SQLite store {self.path} is not open")
        return self._conn

    def _notify(self) -> None:
        for listener in builtins.list(self._listeners):
            listener()

    # schedule -----------------------------------------------------------------------------------
    async def schedule(self, items: Sequence[NewItem]) -> list[int]:
        if not items:
            return []
        ids = await self._run(self._schedule, items, _ts(self.clock.now()))
        self._notify()
        return ids

    def _schedule(self, items: Sequence[NewItem], now: float) -> list[int]:
        conn = self.conn
        ids: list[int] = []
        with _immediate(conn):
            for it in items:
                cur = conn.execute(_INSERT, _row(it, now))
                if cur.rowcount == 1 and cur.lastrowid is not None:
                    ids.append(cur.lastrowid)
                else:
                    ids.append(conn.execute(_IDS_BY_KEY, (it.idempotency_key,)).fetchone()[0])
        return ids

    async def schedule_claimed(
        self, items: Sequence[NewItem], owner: str, lease_seconds: float
    ) -> ClaimedSchedule:
        if not items:
            return ClaimedSchedule([], [])
        now = self.clock.now()
        ids, rows = await self._run(
            self._schedule_claimed, items, _ts(now), _ts(now + timedelta(seconds=lease_seconds)), owner
        )
        return ClaimedSchedule(ids, [_item(r) for r in rows])

    def _schedule_claimed(
        self, items: Sequence[NewItem], now: float, lease_until: float, owner: str
    ) -> tuple[list[int], list[Any]]:
        conn = self.conn
        ids: list[int] = []
        rows: list[Any] = []
        with _immediate(conn):
            for it in items:
                row = conn.execute(_INSERT_CLAIMED, (*_row(it, now), lease_until, owner)).fetchone()
                if row is not None:
                    rows.append(row)
                    ids.append(row[0])
                else:
                    ids.append(conn.execute(_IDS_BY_KEY, (it.idempotency_key,)).fetchone()[0])
        return ids, rows

    # claims and outcomes -----------------------------------------------------------------------
    async def claim_due(
        self,
        batch: int,
        lease_seconds: float,
        owner: str,
        *,
        operation_types: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
    ) -> list[QueueItem]:
        now = self.clock.now()
        rows = await self._run(
            self._claim, batch, _ts(now), _ts(now + timedelta(seconds=lease_seconds)), owner,
            _filters(operation_types, targets),
        )
        return [_item(r, reclaimed) for r, reclaimed in rows]

    def _claim(
        self, batch: int, now: float, lease_until: float, owner: str, filters: tuple[Any, ...]
    ) -> list[tuple[Any, bool]]:
        conn = self.conn
        with _immediate(conn):
            expired = conn.execute(_CLAIM_EXPIRED, (lease_until, owner, now, now, *filters, batch)).fetchall()
            due: list[Any] = []
            if len(expired) < batch:
                due = conn.execute(
                    _CLAIM_DUE, (lease_until, owner, now, now, *filters, batch - len(expired))
                ).fetchall()
        return [(r, True) for r in expired] + [(r, False) for r in due]

    async def heartbeat(self, id: int, fence: int, lease_seconds: float) -> bool:
        now = self.clock.now()
        count = await self._run(
            self._write, _HEARTBEAT, (_ts(now + timedelta(seconds=lease_seconds)), _ts(now), id, fence)
        )
        return count == 1

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        return self.conn.execute(sql, params).rowcount

    async def complete(self, id: int, fence: int) -> None:
        if await self.complete_many([(id, fence)]):
            raise StaleFence(f"item {id}: fence {fence} no longer owns it")

    async def complete_many(self, claims: Sequence[tuple[int, int]]) -> list[int]:
        if not claims:
            return []
        return await self._run(self._complete_many, claims, _ts(self.clock.now()))

    def _complete_many(self, claims: Sequence[tuple[int, int]], now: float) -> list[int]:
        rows = self.conn.execute(_COMPLETE_MANY, (now, json.dumps([list(c) for c in claims]))).fetchall()
        done = {r[0] for r in rows}
        return [c[0] for c in claims if c[0] not in done]

    async def reschedule(
        self,
        id: int,
        fence: int,
        at: datetime,
        error: str | None,
        *,
        count_attempt: bool = True,
        deferred_by: str | None = None,
    ) -> None:
        params = (_ts(at), error, 1 if count_attempt else 0, deferred_by, _ts(self.clock.now()), id, fence)
        if await self._run(self._write, _RESCHEDULE, params) != 1:
            raise StaleFence(f"item {id}: fence {fence} no longer owns it")

    async def dead_letter(self, id: int, fence: int, reason: str) -> None:
        params = (reason, _ts(self.clock.now()), id, fence)
        if await self._run(self._write, _DEAD_LETTER, params) != 1:
            raise StaleFence(f"item {id}: fence {fence} no longer owns it")

    # operator actions ----------------------------------------------------------------------------
    async def requeue(
        self,
        *,
        ids: Sequence[int] | None = None,
        operation_type: str | None = None,
        all_dead: bool = False,
    ) -> int:
        now = _ts(self.clock.now())
        params = (now, now, all_dead, json.dumps(builtins.list(ids or [])), operation_type)
        moved = await self._run(self._write, _REQUEUE, params)
        if moved:
            self._notify()
        return moved

    async def release_deferred(self, breaker_name: str, limit: int) -> int:
        now = _ts(self.clock.now())
        moved = await self._run(self._write, _RELEASE_DEFERRED, (now, now, breaker_name, max(limit, 0)))
        if moved:
            self._notify()
        return moved

    async def ack_pending(self, idempotency_key: str) -> bool:
        return await self._run(self._write, _ACK_PENDING, (_ts(self.clock.now()), idempotency_key)) == 1

    async def purge(self, older_than: timedelta, status: str | None = None) -> int:
        validate_status(status)
        statuses = [status] if status is not None else builtins.list(TERMINAL_STATUSES)
        return await self._run(
            self._write, _PURGE, (json.dumps(statuses), _ts(self.clock.now() - older_than))
        )

    async def cleanup(self, retention: timedelta) -> int:
        return await self.purge(retention, Status.COMPLETED)

    # reads --------------------------------------------------------------------------------------
    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    async def stats(self) -> list[StatsRow]:
        now = _ts(self.clock.now())
        rows = await self._run(self._fetch, _STATS, ())
        return [
            StatsRow(r[0], r[1], int(r[2]), float(r[3]), int(r[4]),
                     now - r[5] if r[1] == Status.PENDING else None)
            for r in rows
        ]

    async def get(self, id: int) -> QueueItem:
        rows = await self._run(self._fetch, _GET, (id,))
        if not rows:
            raise ItemNotFound(f"no queue item with id {id}")
        return _item(rows[0])

    async def list(
        self,
        *,
        status: str | None = None,
        operation_type: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> builtins.list[QueueItem]:
        validate_status(status)
        rows = await self._run(
            self._fetch, _LIST, (status, status, operation_type, operation_type, limit)
        )
        return [_item(r) for r in rows]

    async def next_due_at(self) -> datetime | None:
        rows = await self._run(self._fetch, _NEXT_DUE, ())
        return _dt(rows[0][0])

    @contextlib.asynccontextmanager
    async def wakeups(self, on_wake: WakeCallback) -> AsyncIterator[None]:
        # Same-process schedulers wake us directly; other processes are seen at the next poll.
        self._listeners.append(on_wake)
        try:
            yield
        finally:
            self._listeners.remove(on_wake)

    async def ping(self) -> None:
        await self._run(self._fetch, "SELECT 1", ())

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(StoreError):
                await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
