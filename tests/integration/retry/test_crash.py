"""Crash recovery across processes on PostgreSQL: SIGKILL mid-batch, and a paused (SIGSTOP) worker.

Every handler side effect is fenced (written only while the attempt's fence still owns the item),
so "exactly once as seen by the handler" is checked in ``crash_effects``: one row per key.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from daz.store import NewItem, open_store

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PROC = Path(__file__).with_name("queue_proc.py")
ITEMS = 20
LEASE = 2.0


class Proc:
    def __init__(self, dsn: str, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(PROC), dsn, "--lease", str(LEASE), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def stop(self) -> dict[str, int]:
        """SIGTERM (cooperative stop) and the stats line it prints."""
        self.popen.send_signal(signal.SIGTERM)
        out, err = self.popen.communicate(timeout=30)
        assert self.popen.returncode == 0, err
        return dict(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate(timeout=30)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.popen.poll() is None:
            os.kill(p.popen.pid, signal.SIGCONT)
        p.kill()


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    store = await open_store(pg_dsn)
    await store.schedule([NewItem("crash_op", {"n": i}, idempotency_key=f"k{i}", max_retries=5)
                          for i in range(ITEMS)])
    await store.close()
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("CREATE TABLE crash_effects (key text, fence bigint, pid int)")
    await conn.execute("CREATE TABLE crash_starts (key text, fence bigint, pid int)")
    try:
        yield conn
    finally:
        await conn.close()


async def wait_for(
    conn: asyncpg.Connection, sql: str, expected: int, *args: object, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await conn.fetchval(sql, *args)
        if value == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{sql!r} stayed {value}, expected {expected}")


async def test_sigkill_mid_batch_items_are_reclaimed_and_done_exactly_once(
    pg_dsn: str, db: asyncpg.Connection, procs: list[Proc]
) -> None:
    victim = Proc(pg_dsn, "--mode", "hang")
    procs.append(victim)
    await wait_for(db, "SELECT count(*) FROM crash_starts WHERE pid = $1", ITEMS, victim.popen.pid)
    assert await db.fetchval("SELECT count(*) FROM daz_retry_queue WHERE status = 'processing'") == ITEMS
    victim.kill()  # SIGKILL while holding the whole batch

    rescuer = Proc(pg_dsn, "--mode", "normal")
    procs.append(rescuer)
    await wait_for(db, "SELECT count(*) FROM daz_retry_queue WHERE status = 'completed'", ITEMS)
    stats = rescuer.stop()
    assert stats.get("reclaimed") == ITEMS
    assert stats.get("succeeded") == ITEMS
    rows = await db.fetch("SELECT key, count(*) AS n, min(pid) AS pid, min(fence) AS fence "
                          "FROM crash_effects GROUP BY key")
    assert len(rows) == ITEMS
    assert {r["n"] for r in rows} == {1}
    assert {r["pid"] for r in rows} == {rescuer.popen.pid}
    assert {r["fence"] for r in rows} == {2}


async def test_paused_worker_late_results_are_rejected_after_reclaim(
    pg_dsn: str, db: asyncpg.Connection, procs: list[Proc]
) -> None:
    sleeper = Proc(pg_dsn, "--mode", "slow", "--slow", "1.0")
    procs.append(sleeper)
    await wait_for(db, "SELECT count(*) FROM crash_starts WHERE pid = $1", ITEMS, sleeper.popen.pid)
    os.kill(sleeper.popen.pid, signal.SIGSTOP)  # mid-handler: no heartbeats, no results

    rescuer = Proc(pg_dsn, "--mode", "normal")
    procs.append(rescuer)
    await wait_for(db, "SELECT count(*) FROM daz_retry_queue WHERE status = 'completed'", ITEMS)
    os.kill(sleeper.popen.pid, signal.SIGCONT)  # its handlers finish late, with stale fences
    await asyncio.sleep(1.5)
    late = sleeper.stop()
    assert late.get("stale_fence") == ITEMS
    assert late.get("succeeded", 0) == 0
    assert rescuer.stop().get("succeeded") == ITEMS

    rows = await db.fetch("SELECT key, count(*) AS n, min(pid) AS pid FROM crash_effects GROUP BY key")
    assert len(rows) == ITEMS
    assert {r["n"] for r in rows} == {1}
    assert {r["pid"] for r in rows} == {rescuer.popen.pid}
    statuses = await db.fetch("SELECT DISTINCT status, fence FROM daz_retry_queue")
    assert [(r["status"], r["fence"]) for r in statuses] == [("completed", 2)]
