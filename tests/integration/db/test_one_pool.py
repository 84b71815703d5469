"""One PostgreSQL pool per process: the app's retry store and SQL service share it, the database
health check reports its saturation and connection health (issue 15), and its connections are
bounded on the client side too."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from daz.app import DazApp
from daz.clock import SystemClock
from daz.config import validate_config
from daz.db.postgres import PgDatabase
from daz.errors import StoreUnavailable
from daz.health.checks import DatabaseCheck
from daz.metrics import DazMetrics
from daz.store import open_store
from daz.store.base import NewItem
from daz.store.migrate import migrate
from daz.testing.faults import TcpProxy

pytestmark = pytest.mark.postgres


async def _connections(dsn: str, application_name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application_name)
        return int(count)
    finally:
        await conn.close()


async def test_store_and_sql_plugin_share_one_pool(pg_dsn: str, tmp_path: Path) -> None:
    name = f"daz_one_pool_{uuid.uuid4().hex[:8]}"
    dsn = f"{pg_dsn}&application_name={name}" if "?" in pg_dsn else f"{pg_dsn}?application_name={name}"
    config = validate_config({
        "rooms": [],
        "database": {"url": dsn, "pool": {"min_size": 2, "max_size": 4}},
        "retry": {"worker_count": 2},
        "spool": {"path": str(tmp_path / "spool.sqlite")},
        "health": {"enabled": False, "external_check": False},
        "plugins": {},
    })
    async with DazApp(config) as app:
        assert app.database is not None
        [item_id] = await app.store.schedule([NewItem("op", {"n": 1})])
        assert (await app.store.get(item_id)).payload == {"n": 1}
        assert await app.sql.query("SELECT 1 AS one") == [{"one": 1}]
        # Every connection this process holds to the database is one of the shared pool's (the
        # store alone used to open its own pool beside the plugin's).
        assert app.database.pool.size >= 2
        assert await _connections(pg_dsn, name) == app.database.pool.size

        [check] = [c for c in app.monitor.checks if isinstance(c, DatabaseCheck)]
        results = {r.measurement: r for r in await check.run()}
        assert set(results) == {"latency", "saturation", "connection_health"}
        assert results["saturation"].status.value == "pass"
        assert results["connection_health"].observed_value is not None
    assert await _connections(pg_dsn, name) == 0


async def test_a_black_holed_server_cannot_hang_a_store_call(pg_dsn: str) -> None:
    # The pool's connections carry a client-side bound (twice the server's statement_timeout): when
    # the network silently drops everything, the call fails as an outage instead of hanging.
    server = urlsplit(pg_dsn)
    async with TcpProxy(server.hostname or "127.0.0.1", server.port or 5432) as proxy:
        dsn = urlunsplit(server._replace(netloc=f"{server.username}@127.0.0.1:{proxy.port}"))
        config = validate_config({"database": {"url": dsn, "statement_timeout_seconds": 0.5,
                                               "pool": {"min_size": 1, "max_size": 2,
                                                        "validation_idle_seconds": 60}}})
        await migrate(dsn)
        database = PgDatabase(dsn, config.database, metrics=DazMetrics(), clock=SystemClock())
        await database.start(require=True)
        store = await open_store(dsn, apply_migrations=False, database=database)
        try:
            await store.ping()
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(store.ping(), 10)  # the outer bound only guards the test
            assert time.monotonic() - started < 5
        finally:
            await store.close()
            await database.close()
