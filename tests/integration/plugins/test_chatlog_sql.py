"""chatlog → SQL service → a real database (SQLite file, PostgreSQL schema): rows land exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from daz.clock import SystemClock
from daz.config import DatabaseConfig
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.plugins.host import PluginHost
from daz.sql.service import SqlService
from daz.store.migrate import migrate

EVENTS = 2000


async def _log_events(url: str) -> None:
    await migrate(url)
    clock = SystemClock()
    metrics = DazMetrics()
    async with EventBus(clock=clock, metrics=metrics) as bus:
        sql = SqlService(url, bus, metrics, clock, None, None, DatabaseConfig(url=url))
        await sql.start()
        try:
            host = PluginHost({"chatlog": {"batch_size": 250}}, bus=bus, clock=clock, metrics=metrics,
                              sql=sql)
            stopping = asyncio.Event()
            async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
                tg.create_task(host.run(stopping), name="test.host")
                await host.wait_started()
                for i in range(EVENTS):
                    bus.publish("cytube.chat", {"room": "lobby", "event": {
                        "username": f"u{i % 7}", "text": f"line {i} <&>", "time_ms": 1_000_000 + i}})
                # Every line again, as the backlog replay after a reconnect would show some of them.
                for i in range(EVENTS - 15, EVENTS):
                    bus.publish("cytube.chat", {"room": "lobby", "backlog": True, "event": {
                        "username": f"u{i % 7}", "text": f"line {i} <&>", "time_ms": 1_000_000 + i}})
                await bus.drain(timeout=20)
                stopping.set()
        finally:
            await sql.close()


async def test_chatlog_rows_land_once_in_sqlite(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "chat.db"
    await _log_events(f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT message) FROM daz_chatlog WHERE kind = 'chat'").fetchone()
        sample = conn.execute("SELECT message FROM daz_chatlog WHERE event_time_ms = 1000005").fetchone()
    assert (total, distinct) == (EVENTS, EVENTS)
    assert sample == ("line 5 <&>",)


@pytest.mark.postgres
async def test_chatlog_rows_land_once_in_postgres(pg_dsn: str) -> None:
    await _log_events(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM daz_chatlog")
        distinct = await conn.fetchval("SELECT count(DISTINCT idempotency_key) FROM daz_chatlog")
    finally:
        await conn.close()
    assert (total, distinct) == (EVENTS, EVENTS)
