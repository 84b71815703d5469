"""The pool manager on a real PostgreSQL: replacement of killed backends, growth and shrinkage."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg
import pytest
from sqltest_support import PluginFactory

from daz.clock import SystemClock
from daz.config import PoolConfig
from daz.db.pool import PoolManager
from daz.errors import SqlError
from daz.metrics import DazMetrics
from daz.sql.backends import PostgresBackend
from daz.testing.pgcluster import free_port

pytestmark = pytest.mark.postgres


def _pool(h_plugin_backend: object) -> PoolManager:
    assert isinstance(h_plugin_backend, PostgresBackend)
    return h_plugin_backend.pool


def _evictions(metrics: DazMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("daz_pool_evictions_total", {"reason": reason})
    return value or 0.0


async def test_terminated_backends_are_replaced_without_caller_errors(
    pg_dsn: str, make_plugin: PluginFactory
) -> None:
    app = f"daz_pool_{uuid.uuid4().hex[:10]}"
    h = await make_plugin(f"{pg_dsn}&application_name={app}",
                          pool={"min_size": 3, "validation_idle_seconds": 0.0})
    pool = _pool(h.plugin.backend)
    assert pool.size == 3  # warmed up at start
    admin = await asyncpg.connect(pg_dsn)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app)
        assert killed == 3
        for _ in range(100):  # bounded wait until the server has really closed them (≤ 5 s)
            left = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app)
            if left == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    # every idle connection is dead; validated checkout must hide that from callers
    results = await asyncio.gather(*(h.plugin.query("SELECT $1::int AS n", i) for i in range(3)))
    assert [r[0]["n"] for r in results] == [0, 1, 2]
    evicted = _evictions(h.metrics, "validation") + _evictions(h.metrics, "closed")
    print(f"evicted after pg_terminate_backend: {evicted:.0f}; pool size now {pool.size}")
    assert evicted == 3
    await pool.maintain()
    assert pool.size >= 3  # back to min_size with fresh connections


async def test_pool_grows_under_load_and_shrinks_when_idle(pg_dsn: str, make_plugin: PluginFactory) -> None:
    h = await make_plugin(pg_dsn, pool={"min_size": 1, "max_size": 8, "acquire_timeout_seconds": 10})
    pool = _pool(h.plugin.backend)
    start_size = pool.size
    peak = 0

    async def sample(stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, pool.size)
            await asyncio.sleep(0.005)

    stop = asyncio.Event()
    t0 = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(sample(stop), name="test.sample")
        await asyncio.gather(*(h.plugin.query("SELECT pg_sleep(0.05)") for _ in range(32)))
        stop.set()
    elapsed = time.monotonic() - t0
    after_load = pool.size
    sizes = [after_load]
    for _ in range(6):  # idle intervals: the plan halves the idle surplus each time
        await pool.maintain()
        sizes.append(pool.size)
    print(f"pool size: start {start_size}, peak {peak} under 32 concurrent 50 ms queries "
          f"({elapsed:.2f}s), idle plans {sizes}")
    assert start_size == 1
    assert peak == 8
    assert sizes[-1] == 1
    assert sizes == sorted(sizes, reverse=True)
    assert _evictions(h.metrics, "shrink") == 7


async def test_plan_grows_the_pool_when_callers_waited(pg_dsn: str) -> None:
    metrics = DazMetrics()
    config = PoolConfig(min_size=1, max_size=3, acquire_timeout_seconds=5)
    pool = PoolManager(lambda: asyncpg.connect(pg_dsn), config, metrics=metrics, clock=SystemClock(),
                       rng=random.Random(3))
    await pool.start(require=True)
    try:
        async def hold() -> None:
            async with pool.acquire() as conn:
                await conn.fetch("SELECT pg_sleep(0.1)")

        # max 3, 6 callers: three wait, which the next plan sees and answers with a bigger target
        await asyncio.gather(*(hold() for _ in range(6)))
        obs = pool.observations()
        assert obs.waiting_peak >= 1
        decided = await pool.maintain()
        assert decided.target_size == 3
        assert metrics.registry.get_sample_value("daz_pool_wait_seconds_count") == 6
    finally:
        await pool.close()


async def test_unreachable_database_at_start(make_plugin: PluginFactory) -> None:
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    with pytest.raises(SqlError, match="require_database"):
        await make_plugin(dsn, require_database=True)
    degraded = await make_plugin(dsn, require_database=False, pool={"min_size": 2})
    assert _pool(degraded.plugin.backend).size == 0  # started, degraded
    with pytest.raises(SqlError) as info:
        await degraded.plugin.query("SELECT 1")
    assert info.value.retryable is True


async def test_snapshot_and_ping_for_health(pg_dsn: str, make_plugin: PluginFactory) -> None:
    h = await make_plugin(pg_dsn, pool={"min_size": 2, "max_size": 5})
    latency = await h.plugin.ping()
    snap = h.plugin.pool_snapshot()
    assert snap is not None
    assert (snap["size"], snap["in_use"], snap["max_size"]) == (2, 0, 5)
    assert 0.0 < snap["health_score_min"] <= snap["health_score_avg"] <= 1.0
    assert 0.0 < latency < 5.0
