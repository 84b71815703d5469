"""Durable storage for the retry queue: one protocol, PostgreSQL and SQLite backends, migrations."""

from __future__ import annotations

from pathlib import Path

from daz.clock import Clock
from daz.db.postgres import PgDatabase
from daz.store.base import STATUSES, ClaimedSchedule, ItemStatus, NewItem, QueueItem, RetryStore, StatsRow
from daz.store.migrate import migrate, parse_url

__all__ = [
    "STATUSES",
    "ClaimedSchedule",
    "ItemStatus",
    "NewItem",
    "QueueItem",
    "RetryStore",
    "StatsRow",
    "open_store",
]


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    apply_migrations: bool = True,
    pool_min_size: int = 1,
    pool_max_size: int = 10,
    database: PgDatabase | None = None,
) -> RetryStore:
    """Open the store named by ``url`` (``sqlite:///path`` or ``postgresql://…``), migrating first.

    On PostgreSQL the store uses ``database`` (the process's shared pool, which the caller owns) or,
    without one, a pool of its own sized ``pool_min_size``..``pool_max_size``, closed with the store.
    Raises ``StoreUnavailable`` when the database cannot be reached.
    """
    backend, target = parse_url(url)
    if apply_migrations:
        await migrate(url)
    if backend == "postgres":
        from daz.store.postgres import PostgresStore

        if database is not None:
            return await PostgresStore.open(database, clock=clock)
        return await PostgresStore.connect(
            target, clock=clock, min_size=pool_min_size, max_size=pool_max_size
        )
    from daz.store.sqlite import SqliteStore

    return await SqliteStore.open(Path(target), clock=clock)
