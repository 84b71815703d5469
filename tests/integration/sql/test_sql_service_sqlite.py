"""The SQL service on the embedded SQLite backend: classification, events, idempotency, retries, bus."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqltest_support import Harness, PluginFactory, apply_sqlite_schema

from daz.clock import SystemClock
from daz.config import DazConfig
from daz.errors import CircuitOpen, SqlError, SqlRetryScheduled
from daz.events.bus import Event
from daz.resilience.registry import BreakerRegistry
from daz.sql.events import FAILURE_FIELDS

TABLE = "CREATE TABLE IF NOT EXISTS notes (k TEXT UNIQUE, v INTEGER);"
INSERT = "INSERT INTO notes (k, v) VALUES ($1, $2)"
COUNT = "SELECT count(*) AS n FROM notes WHERE k = $1"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "daz.db"
    apply_sqlite_schema(path, TABLE)
    return path


async def _harness(make_plugin: PluginFactory, db_path: Path, **kw: object) -> Harness:
    return await make_plugin(f"sqlite:///{db_path}", **kw)


async def _count(h: Harness, key: str) -> int:
    row = await h.plugin.query_one(COUNT, key)
    assert row is not None
    return int(row["n"])


async def test_query_exec_and_transaction_round_trip(make_plugin: PluginFactory, db_path: Path) -> None:
    h = await _harness(make_plugin, db_path)
    assert await h.plugin.exec(INSERT, "a", 1, source="test") == 1
    assert await h.plugin.exec_many(INSERT, [("b", 2), ("c", 3)]) == 2
    rows = await h.plugin.query("SELECT k, v FROM notes WHERE v >= $1 ORDER BY v", 2)
    assert rows == [{"k": "b", "v": 2}, {"k": "c", "v": 3}]
    async def failing_transaction() -> None:
        async with h.plugin.transaction() as tx:
            await tx.exec(INSERT, "d", 4)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_transaction()
    assert await _count(h, "d") == 0  # rolled back
    async with h.plugin.transaction() as tx:
        await tx.exec(INSERT, "e", 5)
        assert await tx.query_one(COUNT, "e") == {"n": 1}
    assert await _count(h, "e") == 1


async def test_constraint_violation_is_not_retryable(make_plugin: PluginFactory, db_path: Path) -> None:
    h = await _harness(make_plugin, db_path)
    await h.plugin.exec(INSERT, "dup", 1)
    async with h.bus.recording("sql.exec.failed") as events:
        with pytest.raises(SqlError) as info:
            await h.plugin.exec(INSERT, "dup", 2, source="chatlog", correlation_id="corr-c")
        await h.bus.drain()
    assert info.value.retryable is False
    assert [e.data["retryable"] for e in events] == [False]
    assert events[0].data["correlation_id"] == "corr-c"


async def test_locked_database_is_retryable(make_plugin: PluginFactory, db_path: Path) -> None:
    h = await _harness(make_plugin, db_path, sqlite_busy_timeout_seconds=0.05)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(SqlError) as info:
            await h.plugin.exec(INSERT, "locked", 1)
        assert info.value.retryable is True
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert info.value.__cause__.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await h.plugin.exec(INSERT, "locked", 1) == 1


async def test_failure_events_have_exactly_the_documented_fields(
    make_plugin: PluginFactory, db_path: Path
) -> None:
    h = await _harness(make_plugin, db_path)
    async with h.bus.recording("sql.*.failed") as events:
        with pytest.raises(SqlError):
            await h.plugin.query("SELECT * FROM missing_table", source="analytics", correlation_id="req-1")
        with pytest.raises(SqlError):
            await h.plugin.exec("INSERT INTO missing_table VALUES ($1)", 1, source="chatlog",
                                idempotency_key="k-1", correlation_id="req-2")
        await h.bus.drain()
    assert [e.name for e in events] == ["sql.query.failed", "sql.exec.failed"]
    for event, corr, source, op_type, idem in zip(
        events, ["req-1", "req-2"], ["analytics", "chatlog"], ["sql.query", "sql.exec"], [False, True],
        strict=True,
    ):
        data = event.data
        assert tuple(data) == FAILURE_FIELDS
        assert set(data) == {"correlation_id", "source", "operation_type", "error", "timestamp",
                             "retryable", "sqlstate", "attempt", "idempotent"}
        assert (data["correlation_id"], data["source"], data["operation_type"]) == (corr, source, op_type)
        assert event.correlation_id == corr
        assert isinstance(data["error"], str)
        assert "no such table" in data["error"]
        assert data["timestamp"].endswith("Z")
        assert datetime.fromisoformat(data["timestamp"]).utcoffset() is not None
        assert data["retryable"] is False
        assert data["sqlstate"] is None  # SQLite has no SQLSTATE
        assert data["attempt"] == 1
        assert data["idempotent"] is idem


async def test_slow_subscriber_does_not_delay_the_callers_error(
    make_plugin: PluginFactory, db_path: Path
) -> None:
    h = await _harness(make_plugin, db_path)
    handled: list[float] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(1.0)
        handled.append(time.monotonic())

    h.bus.subscribe("sql.*.failed", slow, name="slow-subscriber")
    # warm the path so the measurement is the error path alone
    with pytest.raises(SqlError):
        await h.plugin.query("SELECT * FROM missing_table")
    start = time.monotonic()
    with pytest.raises(SqlError):
        await h.plugin.query("SELECT * FROM missing_table")
    elapsed = time.monotonic() - start
    print(f"caller's error latency with a 1 s subscriber: {elapsed * 1000:.1f} ms")
    assert elapsed < 0.5  # the subscriber takes 1 s: waiting for it would show here
    await h.bus.drain(timeout=5)
    assert len(handled) == 2  # the subscriber did get both events, later


async def test_idempotent_exec_applies_once(make_plugin: PluginFactory, db_path: Path) -> None:
    h = await _harness(make_plugin, db_path)
    assert await h.plugin.exec(INSERT, "once", 1, idempotency_key="key-once") == 1
    assert await h.plugin.exec(INSERT, "once", 1, idempotency_key="key-once") == 0
    assert await h.plugin.exec_many(INSERT, [("m1", 1), ("m2", 2)], idempotency_key="batch") == 2
    assert await h.plugin.exec_many(INSERT, [("m1", 1), ("m2", 2)], idempotency_key="batch") == 0
    assert [await _count(h, k) for k in ("once", "m1", "m2")] == [1, 1, 1]


async def test_retryable_idempotent_failure_queues_the_original_operation(
    make_plugin: PluginFactory, db_path: Path
) -> None:
    h = await _harness(make_plugin, db_path, sqlite_busy_timeout_seconds=0.05)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SqlRetryScheduled):
            await h.plugin.exec(INSERT, "queued", b"\x01", source="chatlog", idempotency_key="idem-1",
                                correlation_id="corr-q")
    finally:
        other.execute("ROLLBACK")
        other.close()
    [item] = h.queue.items
    assert item.operation_type == "sql_operation"
    assert item.correlation_id == "corr-q"
    assert item.target == "database"
    assert item.idempotency_key == "sql:idem-1"
    assert item.payload["sql"] == INSERT
    assert item.payload["params"] == ["queued", {"$t": "bytes", "v": "AQ=="}]
    assert item.payload["rerun"] is True
    assert "failed" not in item.payload["sql"]  # the operation, never the failure notice
    handler = h.queue.handlers["sql_operation"]
    await handler(h.queue.as_queue_item(0))
    await handler(h.queue.as_queue_item(0, attempt=1))  # a duplicate delivery: still applied once
    assert await _count(h, "queued") == 1


async def test_failed_non_idempotent_exec_is_dead_lettered_never_rerun(
    make_plugin: PluginFactory, db_path: Path
) -> None:
    h = await _harness(make_plugin, db_path, sqlite_busy_timeout_seconds=0.05)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SqlError) as info:
            await h.plugin.exec(INSERT, "unsafe", 1, correlation_id="corr-u")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not isinstance(info.value, SqlRetryScheduled)
    [item] = h.queue.items
    assert item.payload["rerun"] is False
    assert item.max_retries == 0
    assert item.payload["sql"] == INSERT  # the payload is kept for an operator
    with pytest.raises(SqlError, match="not re-run") as refused:
        await h.queue.handlers["sql_operation"](h.queue.as_queue_item(0))
    assert refused.value.retryable is False  # → the queue dead-letters it
    assert await _count(h, "unsafe") == 0


async def test_open_breaker_fails_fast_and_sends_idempotent_writes_to_the_queue(
    make_plugin: PluginFactory, db_path: Path
) -> None:
    breakers = BreakerRegistry(DazConfig(), None, None, SystemClock(), random.Random(1))
    h = await _harness(make_plugin, db_path, breakers=breakers)
    breakers.force_open("database")
    start = time.monotonic()
    with pytest.raises(CircuitOpen):
        await h.plugin.query("SELECT 1 AS one")
    with pytest.raises(SqlRetryScheduled) as info:
        await h.plugin.exec(INSERT, "while-open", 1, idempotency_key="open-1")
    assert time.monotonic() - start < 0.1
    assert isinstance(info.value.__cause__, CircuitOpen)
    assert [i.payload["rerun"] for i in h.queue.items] == [True]
    breakers.force_close("database")
    await h.queue.handlers["sql_operation"](h.queue.as_queue_item(0))
    assert await _count(h, "while-open") == 1


async def test_bus_requests_reach_the_database(make_plugin: PluginFactory, db_path: Path) -> None:
    h = await _harness(make_plugin, db_path)
    reply = await h.bus.request("sql.exec.request", {"sql": INSERT, "params": ["bus", 7],
                                                     "idempotency_key": "bus-1"},
                                timeout=5, source="greeter", correlation_id="corr-bus")
    assert reply == {"rows_affected": 1}
    reply = await h.bus.request("sql.query.request", {"sql": "SELECT v FROM notes WHERE k = $1",
                                                      "params": ["bus"]}, timeout=5)
    assert reply == {"rows": [{"v": 7}]}
    async with h.bus.recording("sql.exec.failed") as events:
        with pytest.raises(SqlError):
            await h.bus.request("sql.exec.request", {"sql": INSERT, "params": ["bus", 8]}, timeout=5,
                                source="greeter", correlation_id="corr-dup")
        await h.bus.drain()
    assert [(e.data["source"], e.data["correlation_id"]) for e in events] == [("greeter", "corr-dup")]
    with pytest.raises(SqlError, match="'sql' string"):
        await h.bus.request("sql.query.request", {"params": []}, timeout=5)


async def test_breaker_counts_database_failures_only(make_plugin: PluginFactory, db_path: Path) -> None:
    from daz.resilience.breaker import CallOutcome

    breakers = BreakerRegistry(DazConfig(), None, None, SystemClock(), random.Random(1))
    h = await _harness(make_plugin, db_path, breakers=breakers)
    breaker = breakers.get("database")

    async def caller_bug() -> None:
        async with h.plugin.transaction() as tx:
            await tx.exec(INSERT, "rolled-back", 1)
            raise KeyError("caller bug")

    with pytest.raises(KeyError):
        await caller_bug()
    with pytest.raises(SqlError):
        await h.plugin.exec(INSERT, "x", "not-an-int-is-fine-in-sqlite", "extra-param")  # binding bug
    assert breaker.calls[CallOutcome.FAILURE] == 0
    assert breaker.calls[CallOutcome.SUCCESS] == 1
    assert breaker.calls[CallOutcome.CALLER_ERROR] == 1
    assert await _count(h, "rolled-back") == 0


async def test_call_under_the_retry_gates_permit_is_not_admitted_twice(
    make_plugin: PluginFactory, db_path: Path
) -> None:
    from daz.resilience.breaker import CallOutcome

    breakers = BreakerRegistry(DazConfig(), None, None, SystemClock(), random.Random(1))
    h = await _harness(make_plugin, db_path, breakers=breakers)
    breaker = breakers.get("database")
    permit = breaker.try_acquire(retry=True)  # what BreakerGate.before_attempt does
    assert permit is not None
    breaker.hold(permit)
    await h.plugin.exec(INSERT, "gated", 1, idempotency_key="gated-1")
    breaker.unhold(permit)
    assert sum(breaker.calls.values()) == 0  # covered by the gate's permit
    permit.done(None)
    assert breaker.calls[CallOutcome.SUCCESS] == 1
