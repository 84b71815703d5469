"""The throwaway PostgreSQL cluster: start, query, stop, restart, kill -9, and clean up after itself."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import psutil
import pytest

from daz.testing.pgcluster import PgCluster, PgClusterError, find_pg_bin
from daz.testing.pytest_plugin import require_cluster

pytestmark = pytest.mark.cluster


async def _select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()


async def _unreachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return True
    await conn.close()
    return False


def _cluster_processes(root: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(str(root) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def test_find_pg_bin_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "initdb").write_text("")
    (tmp_path / "postgres").write_text("")
    monkeypatch.setenv("DAZ_PG_BIN", str(tmp_path))
    assert find_pg_bin() == tmp_path


def test_port_before_create_is_an_error() -> None:
    with pytest.raises(PgClusterError):
        _ = PgCluster().port


async def test_lifecycle_start_stop_restart_kill9_and_cleanup() -> None:
    require_cluster()
    cluster = PgCluster()
    await cluster.astart()
    root = cluster.root
    try:
        dsn = cluster.dsn
        assert await _select_one(dsn) == 1
        assert cluster.is_running()
        assert cluster.dsn.startswith("postgresql://postgres@127.0.0.1:")

        # A committed row must survive a fast stop and a kill -9 (crash recovery on restart).
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE t (v int)")
        await conn.execute("INSERT INTO t VALUES (42)")
        await conn.close()

        await cluster.astop()
        assert not cluster.is_running()
        assert await _unreachable(dsn)

        await cluster.astart()
        assert cluster.dsn == dsn, "the DSN must not change across restarts"
        assert await _select_one(dsn) == 1

        pid_before = cluster.pid
        await cluster.akill9()
        assert not cluster.is_running()
        assert _cluster_processes(root) == [], "kill9 must take every backend down with the postmaster"
        assert await _unreachable(dsn)

        await cluster.arestart()
        assert cluster.pid != pid_before
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT v FROM t") == 42
        await conn.close()
    finally:
        await cluster.adestroy()
    assert not root.exists()
    assert _cluster_processes(root) == []


def test_sync_context_manager_cleans_up() -> None:
    require_cluster()
    with PgCluster() as cluster:
        root = cluster.root
        assert asyncio.run(_select_one(cluster.dsn)) == 1
        assert oct(os.stat(cluster.data_dir).st_mode & 0o777) == "0o700"
    assert not root.exists()
    assert _cluster_processes(root) == []


def test_two_clusters_run_side_by_side() -> None:
    require_cluster()
    with PgCluster() as first, PgCluster() as second:
        assert first.port != second.port
        assert asyncio.run(_select_one(first.dsn)) == 1
        first.stop()
        assert asyncio.run(_select_one(second.dsn)) == 1
