"""Each error class produced by a REAL PostgreSQL, classified through the SQL service."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqltest_support import PluginFactory, apply_pg_schema
from tests.conftest import require

from daz.errors import SqlError
from daz.testing.pgcluster import PgCluster, unavailable_reason

pytestmark = pytest.mark.postgres

TABLE = "CREATE TABLE IF NOT EXISTS notes (k text UNIQUE, v integer);"


async def _failure(coro: object) -> SqlError:
    with pytest.raises(SqlError) as info:
        await coro  # type: ignore[misc]
    return info.value


async def test_syntax_error_is_not_retryable(pg_dsn: str, make_plugin: PluginFactory) -> None:
    h = await make_plugin(pg_dsn)
    async with h.bus.recording("sql.query.failed") as events:
        err = await _failure(h.plugin.query("SELEC 1", source="t"))
        await h.bus.drain()
    assert (err.sqlstate, err.retryable) == ("42601", False)
    assert [(e.data["sqlstate"], e.data["retryable"]) for e in events] == [("42601", False)]


async def test_unique_violation_is_not_retryable(pg_dsn: str, make_plugin: PluginFactory) -> None:
    await apply_pg_schema(pg_dsn, TABLE)
    h = await make_plugin(pg_dsn)
    await h.plugin.exec("INSERT INTO notes (k, v) VALUES ($1, $2)", "a", 1)
    err = await _failure(h.plugin.exec("INSERT INTO notes (k, v) VALUES ($1, $2)", "a", 2))
    assert (err.sqlstate, err.retryable) == ("23505", False)


async def test_serialization_failure_is_retryable(pg_dsn: str, make_plugin: PluginFactory) -> None:
    await apply_pg_schema(pg_dsn, TABLE)
    h = await make_plugin(pg_dsn, pool={"min_size": 2})
    # Write skew: each transaction reads the sum, then inserts; SERIALIZABLE must abort one.
    first = h.plugin.transaction(isolation="serializable", correlation_id="tx-1")
    second = h.plugin.transaction(isolation="serializable", correlation_id="tx-2")
    tx1 = await first.__aenter__()
    tx2 = await second.__aenter__()
    await tx1.query("SELECT coalesce(sum(v), 0) AS s FROM notes")
    await tx2.query("SELECT coalesce(sum(v), 0) AS s FROM notes")
    await tx1.exec("INSERT INTO notes (k, v) VALUES ($1, $2)", "one", 1)
    await tx2.exec("INSERT INTO notes (k, v) VALUES ($1, $2)", "two", 2)
    await first.__aexit__(None, None, None)
    async with h.bus.recording("sql.exec.failed") as events:
        with pytest.raises(SqlError) as info:
            await second.__aexit__(None, None, None)
        await h.bus.drain()
    assert (info.value.sqlstate, info.value.retryable) == ("40001", True)
    assert [e.data["correlation_id"] for e in events] == ["tx-2"]


async def test_statement_timeout_is_retryable(pg_dsn: str, make_plugin: PluginFactory) -> None:
    h = await make_plugin(pg_dsn, statement_timeout_seconds=0.2)
    err = await _failure(h.plugin.query("SELECT pg_sleep(3)"))
    assert (err.sqlstate, err.retryable) == ("57014", True)
    assert await h.plugin.query("SELECT 1 AS one") == [{"one": 1}]  # the connection is still fine


async def test_terminated_backend_is_retryable(pg_dsn: str, make_plugin: PluginFactory) -> None:
    app = f"daz_term_{uuid.uuid4().hex[:10]}"
    h = await make_plugin(f"{pg_dsn}&application_name={app}", pool={"min_size": 1})
    running = asyncio.ensure_future(h.plugin.query("SELECT pg_sleep(10)", correlation_id="victim"))
    admin = await asyncpg.connect(pg_dsn)
    try:
        killed = 0
        for _ in range(100):  # bounded: until the sleeping query shows up (≤ 5 s)
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'", app)
            if killed:
                break
            await asyncio.sleep(0.05)
        assert killed == 1
    finally:
        await admin.close()
    err = await _failure(running)
    # asyncpg reports the in-flight query's lost socket as 08003; an idle one reads 57P01 first
    assert err.sqlstate in {"57P01", "08003", "08006"}
    assert err.retryable is True
    # the dead connection was discarded: the next call gets a fresh one
    assert await h.plugin.query("SELECT 1 AS one") == [{"one": 1}]


@pytest.mark.cluster
async def test_stopped_server_is_retryable(make_plugin: PluginFactory) -> None:
    require(unavailable_reason() is None, f"throwaway cluster: {unavailable_reason()}")
    async with PgCluster() as cluster:
        h = await make_plugin(cluster.dsn, pool={"min_size": 1, "validation_idle_seconds": 0})
        assert await h.plugin.query("SELECT 1 AS one") == [{"one": 1}]
        await cluster.astop("fast")
        err = await _failure(h.plugin.query("SELECT 1 AS one"))
        assert err.retryable is True
        assert err.sqlstate is None or err.sqlstate.startswith(("08", "57P"))
        refused = await _failure(h.plugin.query("SELECT 1 AS one"))  # no server: connect refused
        assert refused.retryable is True
        assert isinstance(refused.__cause__, OSError)
        await cluster.astart()
        assert await h.plugin.query("SELECT 1 AS one") == [{"one": 1}]
