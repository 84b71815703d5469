"""The local spool: durable FIFO, bounded, drained in order and idempotently (SQLite in tmp_path)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daz.errors import SpoolFull, StoreUnavailable
from daz.metrics import DazMetrics
from daz.retry.spool import Spool, SpoolDrainer, decode_item, encode_item
from daz.store.base import NewItem
from daz.testing.clock import FakeClock
from daz.testing.memory_store import InMemoryStore


def _item(n: int, key: str | None = None) -> NewItem:
    return NewItem(operation_type="sql_operation", payload={"n": n, "sql": "INSERT $1"}, target="database",
                   correlation_id=f"c{n}", idempotency_key=key, max_retries=3,
                   retry_after=datetime(2026, 1, 1, 0, 0, n, tzinfo=UTC), timeout_seconds=30.0)


def test_item_encoding_round_trips() -> None:
    item = _item(3, "k3")
    assert decode_item(encode_item(item)) == item


async def test_put_is_durable_and_settings_are_wal_full(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, max_items=10, metrics=DazMetrics())
    await spool.put([_item(1, "k1"), _item(2)])
    await spool.close()
    # a fresh reader (another process after a crash) sees both, in order, each with a key
    reopened = Spool(path, max_items=10)
    items = [i for _, i in await reopened.peek()]
    assert [i.payload["n"] for i in items] == [1, 2]
    assert items[0].idempotency_key == "k1"
    assert items[1].idempotency_key is not None
    assert items[1].idempotency_key.startswith("spool:")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert await reopened._db.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL
    await reopened.close()


async def test_full_spool_refuses_all_of_a_batch_and_counts_it(tmp_path: Path) -> None:
    metrics = DazMetrics()
    spool = Spool(tmp_path / "s.sqlite", max_items=3, metrics=metrics)
    await spool.put([_item(1), _item(2)])
    with pytest.raises(SpoolFull, match=r"spool\.max_items=3"):
        await spool.put([_item(3), _item(4)])
    assert await spool.count() == 2  # all-or-nothing
    assert metrics.registry.get_sample_value("daz_spool_full_total") == 1
    assert metrics.registry.get_sample_value("daz_spool_items") == 2
    await spool.close()


async def test_drainer_moves_items_in_order_once_the_store_answers(tmp_path: Path) -> None:
    metrics = DazMetrics()
    clock = FakeClock()
    spool = Spool(tmp_path / "s.sqlite", max_items=100, metrics=metrics)
    await spool.put([_item(n, f"k{n}") for n in range(1, 6)])
    store = InMemoryStore(clock)
    store.available = False
    woken: list[int] = []
    drainer = SpoolDrainer(spool, store, clock=clock, interval_seconds=1.0, metrics=metrics,
                           on_drained=lambda: woken.append(1), batch=2)
    with pytest.raises(StoreUnavailable):
        await drainer.drain_once()
    assert await spool.count() == 5
    store.available = True
    assert await drainer.drain_once() == 5
    assert await spool.count() == 0
    rows = await store.list(limit=10)
    assert sorted((r.id, r.payload["n"]) for r in rows) == [(i, i) for i in range(1, 6)]
    assert metrics.registry.get_sample_value("daz_spool_drained_total") == 5
    assert woken == [1]
    await spool.close()


async def test_a_batch_repeated_after_a_crash_is_deduplicated(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_items=100)
    await spool.put([_item(1, "k1"), _item(2)])
    store = InMemoryStore(FakeClock())
    # the process died after the store insert but before the spool delete: the batch is drained again
    await store.schedule([i for _, i in await spool.peek()])
    await SpoolDrainer(spool, store, clock=FakeClock(), interval_seconds=1).drain_once()
    assert len(await store.list(limit=10)) == 2
    await spool.close()


async def test_drainer_service_drains_at_start_and_retries_while_unavailable(tmp_path: Path) -> None:
    clock = FakeClock()
    spool = Spool(tmp_path / "s.sqlite", max_items=100)
    await spool.put([_item(1, "k1")])
    store = InMemoryStore(clock)
    store.available = False
    drainer = SpoolDrainer(spool, store, clock=clock, interval_seconds=1.0)
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(drainer.run(stopping), name="test.drainer")
        for _ in range(200):  # the first (start-up) drain attempt runs in a thread: wait for its sleep
            if clock.sleepers:
                break
            await asyncio.sleep(0.005)
        assert await spool.count() == 1
        store.available = True
        await clock.advance(1.0)
        for _ in range(200):  # bounded: the thread hop completes within a second
            if await spool.count() == 0:
                break
            await asyncio.sleep(0.005)
        stopping.set()
    assert await spool.count() == 0
    assert len(await store.list(limit=10)) == 1
    await spool.close()
