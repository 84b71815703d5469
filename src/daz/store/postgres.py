"""PostgreSQL retry store on asyncpg: one round-trip per batch operation, SKIP LOCKED claims.

Why asyncpg rather than psycopg 3: measured on the claim/complete path (docs/retry-queue.md) it
spends less Python time per row decoded, and the SQL service and peers use it too.
Connections come from the process's ``daz.db.postgres.PgDatabase`` (the pool it shares with the SQL
service); a store opened alone (CLI, benchmarks, tests) opens its own. Wake-ups: ``schedule``/
``requeue``/``release_deferred`` send a NOTIFY on a channel named after the current schema (so
parallel test schemas never cross); ``wakeups()`` LISTENs on the database's dedicated LISTEN
connection, which reconnects with backoff if it drops.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import structlog

from daz.clock import Clock, SystemClock
from daz.db.errors import translate
from daz.db.postgres import PgDatabase
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

log = structlog.get_logger("daz.store")

_SQL: Final = queries.load("postgres", (
    "schedule", "schedule_claimed", "ids_by_key", "claim", "heartbeat", "complete_many", "reschedule",
    "dead_letter", "requeue", "release_deferred", "ack_pending", "purge", "stats", "dead_letters_since",
    "get", "list", "next_due", "current_schema", "ping", "database_now",
))


def _item(r: asyncpg.Record, reclaimed: bool = False) -> QueueItem:
    return QueueItem(
        r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9], r[10], r[11], r[12],
        r[13], r[14], r[15], r[16], r[17], r[18], r[19], reclaimed,
    )


def _translated(operation: str) -> contextlib.AbstractContextManager[None]:
    """Driver errors become daz errors (``daz.db.errors.translate``): retryable → ``StoreUnavailable``."""
    return translate(f"PostgreSQL {operation}")


class PostgresStore:
    """``RetryStore`` on PostgreSQL. ``await PostgresStore.connect(dsn)`` opens its own pool;
    ``await PostgresStore.open(database)`` uses the process's shared one (``PgDatabase``)."""

    backend = "postgres"

    def __init__(self, db: PgDatabase, channel: str, clock: Clock, *, owns_db: bool) -> None:
        self._db = db
        self._owns_db = owns_db
        self.channel = channel
        self.clock = clock

    @classmethod
    async def open(
        cls, db: PgDatabase, *, clock: Clock | None = None, owns_db: bool = False
    ) -> PostgresStore:
        """The store over ``db`` (already started); ``owns_db``: ``close()`` closes the pool too."""
        with _translated("connect"):
            schema = await db.fetchval(_SQL["current_schema"])
        channel = f"daz_retry_{schema}"[:63]
        return cls(db, channel, clock if clock is not None else SystemClock(), owns_db=owns_db)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        clock: Clock | None = None,
        min_size: int = 1,
        max_size: int = 10,
    ) -> PostgresStore:
        """A store with a pool of its own (``min_size``..``max_size``), for a process without an app."""
        db = PgDatabase.standalone(dsn, min_size=min_size, max_size=max_size)
        try:
            with _translated("connect"):
                await db.start(require=True)
            return await cls.open(db, clock=clock, owns_db=True)
        except BaseException:
            await db.close()
            raise

    async def schedule(self, items: Sequence[NewItem]) -> list[int]:
        if not items:
            return []
        now = self.clock.now()
        with _translated("schedule"):
            rows = await self._db.fetch(_SQL["schedule"], *_columns(items, now), now, self.channel)
            inserted = sorted((r[0], r[1]) for r in rows)
            return await self._ids(items, inserted)

    async def schedule_claimed(
        self, items: Sequence[NewItem], owner: str, lease_seconds: float
    ) -> ClaimedSchedule:
        if not items:
            return ClaimedSchedule([], [])
        now = self.clock.now()
        with _translated("schedule"):
            rows = await self._db.fetch(
                _SQL["schedule_claimed"], *_columns(items, now), now,
                now + timedelta(seconds=lease_seconds), owner,
            )
            claimed = sorted((_item(r) for r in rows), key=lambda i: i.id)
            ids = await self._ids(items, [(i.id, i.idempotency_key) for i in claimed])
        return ClaimedSchedule(ids, claimed)

    async def _ids(
        self, items: Sequence[NewItem], inserted: builtins.list[tuple[int, str | None]]
    ) -> builtins.list[int]:
        """Ids in input order; ``inserted`` is (id, key) of the new rows, ascending by id."""
        by_key = {key: id for id, key in inserted if key is not None}
        missing = [it.idempotency_key for it in items
                   if it.idempotency_key is not None and it.idempotency_key not in by_key]
        existing: dict[str, int] = {}
        if missing:
            existing = {r[0]: r[1] for r in await self._db.fetch(_SQL["ids_by_key"], missing)}
        return _assign_ids(items, [id for id, _ in inserted], by_key, existing)

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
        with _translated("claim"):
            rows = await self._db.fetch(
                _SQL["claim"], now, batch, now + timedelta(seconds=lease_seconds), owner,
                builtins.list(operation_types) if operation_types is not None else None,
                builtins.list(targets) if targets is not None else None,
            )
        return [_item(r, r[20]) for r in rows]

    async def heartbeat(self, id: int, fence: int, lease_seconds: float) -> bool:
        now = self.clock.now()
        with _translated("heartbeat"):
            until = now + timedelta(seconds=lease_seconds)
            status = await self._db.execute(_SQL["heartbeat"], id, fence, until, now)
        return status.endswith(" 1")

    async def complete(self, id: int, fence: int) -> None:
        if await self.complete_many([(id, fence)]):
            raise StaleFence(id, fence)

    async def complete_many(self, claims: Sequence[tuple[int, int]]) -> list[int]:
        if not claims:
            return []
        ids = [c[0] for c in claims]
        with _translated("complete"):
            rows = await self._db.fetch(
                _SQL["complete_many"], ids, [c[1] for c in claims], self.clock.now()
            )
        done = {r[0] for r in rows}
        return [id for id in ids if id not in done]

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
        with _translated("reschedule"):
            status = await self._db.execute(
                _SQL["reschedule"], id, fence, at, error, 1 if count_attempt else 0, deferred_by,
                self.clock.now(),
            )
        if not status.endswith(" 1"):
            raise StaleFence(id, fence)

    async def dead_letter(self, id: int, fence: int, reason: str) -> None:
        with _translated("dead_letter"):
            status = await self._db.execute(_SQL["dead_letter"], id, fence, reason, self.clock.now())
        if not status.endswith(" 1"):
            raise StaleFence(id, fence)

    async def requeue(
        self,
        *,
        ids: Sequence[int] | None = None,
        operation_type: str | None = None,
        all_dead: bool = False,
    ) -> int:
        with _translated("requeue"):
            count = await self._db.fetchval(
                _SQL["requeue"], builtins.list(ids or []), operation_type, all_dead, self.clock.now(),
                self.channel,
            )
        return int(count or 0)

    async def release_deferred(self, breaker_name: str, limit: int) -> int:
        with _translated("release_deferred"):
            count = await self._db.fetchval(
                _SQL["release_deferred"], breaker_name, max(limit, 0), self.clock.now(), self.channel
            )
        return int(count or 0)

    async def ack_pending(self, idempotency_key: str) -> bool:
        with _translated("ack_pending"):
            status = await self._db.execute(_SQL["ack_pending"], idempotency_key, self.clock.now())
        return status.endswith(" 1")

    async def purge(self, older_than: timedelta, status: str | None = None) -> int:
        validate_status(status)
        statuses = [status] if status is not None else builtins.list(TERMINAL_STATUSES)
        with _translated("purge"):
            result = await self._db.execute(_SQL["purge"], statuses, self.clock.now() - older_than)
        return int(result.rsplit(" ", 1)[-1])

    async def cleanup(self, retention: timedelta) -> int:
        return await self.purge(retention, ItemStatus.COMPLETED)

    async def stats(self) -> list[StatsRow]:
        now = self.clock.now()
        with _translated("stats"):
            rows = await self._db.fetch(_SQL["stats"])
        return [
            StatsRow(
                r[0], r[1], int(r[2]), float(r[3]), int(r[4]),
                (now - r[5]).total_seconds() if r[1] == ItemStatus.PENDING else None,
            )
            for r in rows
        ]

    async def dead_letters_since(self, since: datetime) -> int:
        with _translated("dead_letters_since"):
            count = await self._db.fetchval(_SQL["dead_letters_since"], since)
        return int(count or 0)

    async def get(self, id: int) -> QueueItem:
        with _translated("get"):
            row = await self._db.fetchrow(_SQL["get"], id)
        if row is None:
            raise ItemNotFound(f"no queue item with id {id}")
        return _item(row)

    async def list(
        self,
        *,
        status: str | None = None,
        operation_type: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> builtins.list[QueueItem]:
        validate_status(status)
        with _translated("list"):
            rows = await self._db.fetch(_SQL["list"], status, operation_type, limit)
        return [_item(r) for r in rows]

    async def next_due_at(self) -> datetime | None:
        with _translated("next_due_at"):
            value: datetime | None = await self._db.fetchval(_SQL["next_due"])
        return value

    def wakeups(self, on_wake: WakeCallback) -> contextlib.AbstractAsyncContextManager[None]:
        return self._db.listen(self.channel, on_wake)

    async def database_now(self) -> datetime:
        """The database server's clock (``clock_timestamp()``), for ``daz.store.dbclock``."""
        with _translated("database_now"):
            value: datetime = await self._db.fetchval(_SQL["database_now"])
        return value

    async def ping(self) -> None:
        with _translated("ping"):
            await self._db.fetchval(_SQL["ping"])

    async def close(self) -> None:
        if self._owns_db:
            await self._db.close()


def _columns(items: Sequence[NewItem], now: datetime) -> list[list[Any]]:
    """The ten parallel arrays the ``unnest`` inserts take, defaults applied."""
    cols: list[list[Any]] = [[] for _ in range(10)]
    for given in items:
        it = with_defaults(given, now)
        cols[0].append(it.correlation_id)
        cols[1].append(it.idempotency_key)
        cols[2].append(it.operation_type)
        cols[3].append(it.target)
        cols[4].append(it.event_type)
        cols[5].append(json.dumps(it.payload))
        cols[6].append(it.priority)
        cols[7].append(it.max_retries)
        cols[8].append(it.retry_after)
        cols[9].append(it.timeout_seconds)
    return cols


def _assign_ids(
    items: Sequence[NewItem],
    inserted_ids: list[int],
    inserted_by_key: dict[str, int],
    existing: dict[str, int],
) -> list[int]:
    """Map ids back to input order: identities ascend in insertion order, duplicates map by key."""
    ids: list[int] = []
    fresh = iter(inserted_ids)
    used_keys: set[str] = set()
    for it in items:
        key = it.idempotency_key
        if key is None:
            ids.append(next(fresh))
        elif key in inserted_by_key and key not in used_keys:
            used_keys.add(key)
            ids.append(next(fresh))
        else:
            ids.append(inserted_by_key.get(key) or existing[key])
    return ids
