"""The local durable spool: where retries go while the retry store (the database) is unreachable.

A small SQLite file (WAL, ``synchronous=FULL``: a ``put`` that returned survives SIGKILL and power
loss) holding prepared ``NewItem``s in arrival order. ``RetryQueue`` calls ``Spool.put`` as its
``on_store_unavailable`` fallback; ``SpoolDrainer`` (a ``Service``) moves items into the store in
order once it answers again, and once at start-up for what a previous process left behind.

Draining is idempotent: every item carries an idempotency key (one is minted at ``put`` for items
without), so if the process dies between the store's insert and the spool's delete, the next drain
re-inserts the same keys and the store dedupes them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any, LiteralString, TypeVar

import structlog

from daz.aio import sleep_or_stop
from daz.clock import Clock
from daz.db.errors import translate
from daz.db.sqlite import SqliteDatabase
from daz.errors import SpoolFull, StoreError, StoreUnavailable
from daz.metrics import DazMetrics
from daz.store.base import NewItem, RetryStore

log = structlog.get_logger("daz.retry.spool")
T = TypeVar("T")

DRAIN_BATCH = 100
KEY_PREFIX = "spool:"

_SCHEMA: LiteralString = (
    "CREATE TABLE IF NOT EXISTS daz_spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL)"
)
_COUNT: LiteralString = "SELECT count(*) FROM daz_spool"
_INSERT: LiteralString = "INSERT INTO daz_spool (item) VALUES (?)"
_PEEK: LiteralString = "SELECT seq, item FROM daz_spool ORDER BY seq LIMIT ?"
_DELETE_UPTO: LiteralString = "DELETE FROM daz_spool WHERE seq <= ?"


def encode_item(item: NewItem) -> str:
    data = asdict(item)
    if item.retry_after is not None:
        data["retry_after"] = item.retry_after.isoformat()
    return json.dumps(data, separators=(",", ":"))


def decode_item(text: str) -> NewItem:
    data: dict[str, Any] = json.loads(text)
    if data.get("retry_after") is not None:
        data["retry_after"] = datetime.fromisoformat(data["retry_after"])
    return NewItem(**data)


class Spool:
    """A bounded, fsync'd FIFO of ``NewItem``s in one SQLite file (``daz.db.sqlite.SqliteDatabase``:
    one connection on its own thread, ``synchronous=FULL``)."""

    def __init__(self, path: Path, *, max_items: int, metrics: DazMetrics | None = None) -> None:
        self.path = path
        self.max_items = max_items
        self.metrics = metrics
        self._db = SqliteDatabase(path, synchronous="FULL", setup=_create, thread_name="daz-spool",
                                  create_parent=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        with translate(f"spool {self.path}"):
            return await self._db.run(fn, *args)

    def _set_gauge(self, count: int) -> None:
        if self.metrics is not None:
            self.metrics.spool_items.set(count)

    # the RetryQueue fallback -----------------------------------------------------------------
    async def __call__(self, items: list[NewItem]) -> None:
        await self.put(items)

    async def put(self, items: Sequence[NewItem]) -> None:
        """Append all of ``items`` durably, or none of them (``SpoolFull``)."""
        keyed = [i if i.idempotency_key else replace(i, idempotency_key=f"{KEY_PREFIX}{uuid.uuid4().hex}")
                 for i in items]
        rows = [(encode_item(i),) for i in keyed]
        count, stored = await self._run(_put, rows, self.max_items)
        if not stored:
            if self.metrics is not None:
                self.metrics.spool_full.inc()
            raise SpoolFull(
                f"spool {self.path} is full ({count} of spool.max_items={self.max_items}); "
                f"{len(rows)} item(s) refused", retryable=True,
            )
        self._set_gauge(count + len(rows))
        log.warning("spool.items_spooled", count=len(rows), depth=count + len(rows))

    # draining --------------------------------------------------------------------------------
    async def peek(self, limit: int = DRAIN_BATCH) -> list[tuple[int, NewItem]]:
        rows = await self._run(_peek, limit)
        return [(seq, decode_item(text)) for seq, text in rows]

    async def remove_through(self, seq: int) -> None:
        """Delete every item up to and including ``seq`` (they are in the store now)."""
        self._set_gauge(await self._run(_remove_through, seq))

    async def count(self) -> int:
        count = await self._run(_count)
        self._set_gauge(count)
        return count

    async def close(self) -> None:
        await self._db.close()


# On the spool's database thread ------------------------------------------------------------------

def _create(conn: sqlite3.Connection) -> None:
    conn.execute(_SCHEMA)


def _put(conn: sqlite3.Connection, rows: list[tuple[str]], max_items: int) -> tuple[int, bool]:
    """(items before, stored): all rows in one transaction, or none when they do not fit."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        count = int(conn.execute(_COUNT).fetchone()[0])
        fits = count + len(rows) <= max_items
        if fits:
            conn.executemany(_INSERT, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT" if fits else "ROLLBACK")
    return count, fits


def _peek(conn: sqlite3.Connection, limit: int) -> list[tuple[int, str]]:
    return [(int(s), str(t)) for s, t in conn.execute(_PEEK, (limit,)).fetchall()]


def _remove_through(conn: sqlite3.Connection, seq: int) -> int:
    conn.execute(_DELETE_UPTO, (seq,))
    return int(conn.execute(_COUNT).fetchone()[0])


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute(_COUNT).fetchone()[0])


class SpoolDrainer:
    """A ``Service``: drains at start-up, then every ``interval_seconds`` while items wait."""

    name = "retry.spool"

    def __init__(
        self,
        spool: Spool,
        store: RetryStore,
        *,
        clock: Clock,
        interval_seconds: float,
        metrics: DazMetrics | None = None,
        on_drained: Callable[[], None] | None = None,
        batch: int = DRAIN_BATCH,
    ) -> None:
        self.spool = spool
        self.store = store
        self.clock = clock
        self.interval_seconds = interval_seconds
        self.metrics = metrics
        self.on_drained = on_drained
        self.batch = batch

    async def drain_once(self) -> int:
        """Move everything now in the spool into the store, oldest first; returns how many moved."""
        moved = 0
        while True:
            batch = await self.spool.peek(self.batch)
            if not batch:
                break
            await self.store.schedule([item for _, item in batch])  # keys dedupe a repeated batch
            await self.spool.remove_through(batch[-1][0])
            moved += len(batch)
            if self.metrics is not None:
                self.metrics.spool_drained.inc(len(batch))
        if moved:
            log.info("spool.drained", count=moved)
            if self.on_drained is not None:
                self.on_drained()
        return moved

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.drain_once()
            except StoreUnavailable as exc:
                log.info("spool.store_unavailable", error=str(exc))
            except StoreError as exc:
                log.error("spool.drain_failed", error=str(exc))  # noqa: TRY400 - a known store error
            await sleep_or_stop(self.clock, self.interval_seconds, stopping)
