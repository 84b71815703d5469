"""SQLite retry store: the embedded default (WAL, one file, safe across processes).

Every operation is one synchronous function run on the thread that owns the file's connection
(``daz.db.sqlite.SqliteDatabase``, the one way daz reaches SQLite), so a whole claim transaction
costs one thread hop (a per-statement driver hops three times, and the hops dominated the drain rate).
Writers serialize on ``BEGIN IMMEDIATE``; other processes wait up to the busy timeout.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from daz.clock import Clock, SystemClock
from daz.db.errors import translate
from daz.db.sqlite import SqliteDatabase
from daz.errors import ItemNotFound, StaleFence
from daz.store import queries
from daz.store.base import (
    DEFAULT_LIST_LIMIT,
    TERMINAL_STATUSES,
    ClaimedSchedule,
    ItemStatus,
    NewItem,
    QueueItem,
    StatsRow,
    WakeCallback,
    validate_status,
    with_defaults,
)

T = TypeVar("T")

_SQL: Final = queries.load("sqlite", (
    "schedule", "schedule_claimed", "id_by_key", "claim_expired", "claim_due", "heartbeat", "complete_many",
    "reschedule", "dead_letter", "requeue", "release_deferred", "ack_pending", "purge", "stats",
    "dead_letters_since", "get", "list", "next_due", "ping",
))


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


def _row(given: NewItem, now: datetime, now_ts: float) -> tuple[Any, ...]:
    it = with_defaults(given, now)
    due = now_ts if it.retry_after is now else _ts(it.retry_after)
    return (
        it.correlation_id, it.idempotency_key, it.operation_type, it.target, it.event_type,
        json.dumps(it.payload), it.priority, it.max_retries, due, it.timeout_seconds, now_ts, now_ts,
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


# On the database's thread: each function is one whole call (one thread hop) -------------------

def _schedule(conn: sqlite3.Connection, items: Sequence[NewItem], now: datetime) -> list[int]:
    ids: list[int] = []
    insert, now_ts = _SQL["schedule"], _ts(now)
    with _immediate(conn):
        for it in items:
            cur = conn.execute(insert, _row(it, now, now_ts))
            if cur.rowcount == 1 and cur.lastrowid is not None:
                ids.append(cur.lastrowid)
            else:
                ids.append(conn.execute(_SQL["id_by_key"], (it.idempotency_key,)).fetchone()[0])
    return ids


def _schedule_claimed(
    conn: sqlite3.Connection, items: Sequence[NewItem], now: datetime, lease_until: float, owner: str
) -> tuple[list[int], list[Any]]:
    ids: list[int] = []
    rows: list[Any] = []
    insert, now_ts = _SQL["schedule_claimed"], _ts(now)
    with _immediate(conn):
        for it in items:
            row = conn.execute(insert, (*_row(it, now, now_ts), lease_until, owner)).fetchone()
            if row is not None:
                rows.append(row)
                ids.append(row[0])
            else:
                ids.append(conn.execute(_SQL["id_by_key"], (it.idempotency_key,)).fetchone()[0])
    return ids, rows


def _claim(  # noqa: PLR0917 - the database thread passes the arguments positionally
    conn: sqlite3.Connection, batch: int, now: float, lease_until: float, owner: str,
    filters: tuple[Any, ...],
) -> list[tuple[Any, bool]]:
    with _immediate(conn):
        expired = conn.execute(
            _SQL["claim_expired"], (lease_until, owner, now, now, *filters, batch)
        ).fetchall()
        due: list[Any] = []
        if len(expired) < batch:
            due = conn.execute(
                _SQL["claim_due"], (lease_until, owner, now, now, *filters, batch - len(expired))
            ).fetchall()
    return [(r, True) for r in expired] + [(r, False) for r in due]


def _write(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    return conn.execute(sql, params).rowcount


def _complete_many(conn: sqlite3.Connection, claims: Sequence[tuple[int, int]], now: float) -> list[int]:
    pairs = json.dumps([list(c) for c in claims])
    rows = conn.execute(_SQL["complete_many"], (now, pairs)).fetchall()
    done = {r[0] for r in rows}
    return [c[0] for c in claims if c[0] not in done]


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


class SqliteStore:
    """``RetryStore`` on one SQLite file. Create with ``await SqliteStore.open(path)``."""

    backend = "sqlite"

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._db = SqliteDatabase(path, thread_name="daz-sqlite")
        self._listeners: list[WakeCallback] = []

    @classmethod
    async def open(cls, path: Path | str, *, clock: Clock | None = None) -> SqliteStore:
        store = cls(Path(path), clock if clock is not None else SystemClock())
        try:
            with translate(f"SQLite {store.path} open"):
                await store._db.open()
        except BaseException:
            await store._db.close()
            raise
        return store

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the database's thread: one hop for a whole transaction."""
        # One translation for every backend: a busy or unreachable file is StoreUnavailable, a bad
        # statement (SQLITE_ERROR) a non-retryable StoreError, never an outage.
        with translate(f"SQLite {self.path}"):
            return await self._db.run(fn, *args)

    def _notify(self) -> None:
        for listener in builtins.list(self._listeners):
            listener()

    # schedule -----------------------------------------------------------------------------------
    async def schedule(self, items: Sequence[NewItem]) -> list[int]:
        if not items:
            return []
        ids = await self._run(_schedule, items, self.clock.now())
        self._notify()
        return ids


    async def schedule_claimed(
        self, items: Sequence[NewItem], owner: str, lease_seconds: float
    ) -> ClaimedSchedule:
        if not items:
            return ClaimedSchedule([], [])
        now = self.clock.now()
        ids, rows = await self._run(
            _schedule_claimed, items, now, _ts(now + timedelta(seconds=lease_seconds)), owner
        )
        return ClaimedSchedule(ids, [_item(r) for r in rows])


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
            _claim, batch, _ts(now), _ts(now + timedelta(seconds=lease_seconds)), owner,
            _filters(operation_types, targets),
        )
        return [_item(r, reclaimed) for r, reclaimed in rows]


    async def heartbeat(self, id: int, fence: int, lease_seconds: float) -> bool:
        now = self.clock.now()
        count = await self._run(
            _write, _SQL["heartbeat"], (_ts(now + timedelta(seconds=lease_seconds)), _ts(now), id, fence)
        )
        return count == 1


    async def complete(self, id: int, fence: int) -> None:
        if await self.complete_many([(id, fence)]):
            raise StaleFence(id, fence)

    async def complete_many(self, claims: Sequence[tuple[int, int]]) -> list[int]:
        if not claims:
            return []
        return await self._run(_complete_many, claims, _ts(self.clock.now()))


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
        if await self._run(_write, _SQL["reschedule"], params) != 1:
            raise StaleFence(id, fence)

    async def dead_letter(self, id: int, fence: int, reason: str) -> None:
        params = (reason, _ts(self.clock.now()), id, fence)
        if await self._run(_write, _SQL["dead_letter"], params) != 1:
            raise StaleFence(id, fence)

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
        moved = await self._run(_write, _SQL["requeue"], params)
        if moved:
            self._notify()
        return moved

    async def release_deferred(self, breaker_name: str, limit: int) -> int:
        now = _ts(self.clock.now())
        params = (now, now, breaker_name, max(limit, 0))
        moved = await self._run(_write, _SQL["release_deferred"], params)
        if moved:
            self._notify()
        return moved

    async def ack_pending(self, idempotency_key: str) -> bool:
        params = (_ts(self.clock.now()), idempotency_key)
        return await self._run(_write, _SQL["ack_pending"], params) == 1

    async def purge(self, older_than: timedelta, status: str | None = None) -> int:
        validate_status(status)
        statuses = [status] if status is not None else builtins.list(TERMINAL_STATUSES)
        return await self._run(
            _write, _SQL["purge"], (json.dumps(statuses), _ts(self.clock.now() - older_than))
        )

    async def cleanup(self, retention: timedelta) -> int:
        return await self.purge(retention, ItemStatus.COMPLETED)

    # reads --------------------------------------------------------------------------------------

    async def stats(self) -> list[StatsRow]:
        now = _ts(self.clock.now())
        rows = await self._run(_fetch, _SQL["stats"], ())
        return [
            StatsRow(r[0], r[1], int(r[2]), float(r[3]), int(r[4]),
                     now - r[5] if r[1] == ItemStatus.PENDING else None)
            for r in rows
        ]

    async def dead_letters_since(self, since: datetime) -> int:
        rows = await self._run(_fetch, _SQL["dead_letters_since"], (_ts(since),))
        return int(rows[0][0])

    async def get(self, id: int) -> QueueItem:
        rows = await self._run(_fetch, _SQL["get"], (id,))
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
            _fetch, _SQL["list"], (status, status, operation_type, operation_type, limit)
        )
        return [_item(r) for r in rows]

    async def next_due_at(self) -> datetime | None:
        rows = await self._run(_fetch, _SQL["next_due"], ())
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
        await self._run(_fetch, _SQL["ping"], ())

    async def close(self) -> None:
        await self._db.close()
