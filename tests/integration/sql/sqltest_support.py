"""Fixtures for the SQL service's integration tests: a plugin on SQLite or PostgreSQL, a fake queue."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daz.clock import SystemClock
from daz.config import DatabaseConfig, PoolConfig
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.sql.service import SqlService
from daz.store.base import NewItem, QueueItem

MIGRATION = "0002_idempotency_keys.sql"


def migration_text(backend: str) -> str:
    return resources.files("daz.store").joinpath("sql", backend, MIGRATION).read_text(encoding="utf-8")


async def apply_pg_schema(dsn: str, extra: str = "") -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(migration_text("postgres"))
        if extra:
            await conn.execute(extra)
    finally:
        await conn.close()


def apply_sqlite_schema(path: Path, extra: str = "") -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(migration_text("sqlite") + extra)
    finally:
        conn.close()


@dataclass
class FakeQueue:
    """Records what the plugin schedules and the handler it registers (no store behind it)."""

    items: list[NewItem] = field(default_factory=list)
    handlers: dict[str, Callable[[QueueItem], Awaitable[None]]] = field(default_factory=dict)

    def register(self, operation_type: str, handler: Callable[[QueueItem], Awaitable[None]]) -> None:
        self.handlers[operation_type] = handler

    async def schedule(self, item: NewItem) -> int:
        self.items.append(item)
        return len(self.items)

    def as_queue_item(self, index: int, attempt: int = 0) -> QueueItem:
        new = self.items[index]
        now = datetime.now(UTC)
        return QueueItem(
            id=index + 1, correlation_id=new.correlation_id or "", idempotency_key=new.idempotency_key,
            operation_type=new.operation_type, target=new.target, event_type=new.event_type,
            payload=new.payload, status="processing", priority=0, attempt=attempt,
            max_retries=new.max_retries if new.max_retries is not None else 3, retry_after=now,
            lease_until=None, lease_owner="test", fence=1, timeout_seconds=30.0, last_error=None,
            created_at=now, updated_at=now,
        )


@dataclass
class Harness:
    plugin: SqlService
    bus: EventBus
    metrics: DazMetrics
    queue: FakeQueue


PluginFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_plugin() -> AsyncIterator[PluginFactory]:
    """``await make_plugin(url, breakers=None, **database_config)`` → a started plugin on a running bus."""
    opened: list[tuple[SqlService, EventBus]] = []

    async def factory(url: str, *, breakers: Any = None, pool: dict[str, Any] | None = None,
                      **database: Any) -> Harness:
        metrics = DazMetrics()
        bus = EventBus(metrics=metrics)
        await bus.__aenter__()
        queue = FakeQueue()
        config = DatabaseConfig(url=url, pool=PoolConfig(**(pool or {})), **database)
        plugin = SqlService(url, bus, metrics, SystemClock(), breakers, queue, config,
                           rng=random.Random(7))
        opened.append((plugin, bus))
        await plugin.start()
        return Harness(plugin, bus, metrics, queue)

    yield factory
    for plugin, bus in reversed(opened):
        await plugin.close()
        await bus.__aexit__(None, None, None)
