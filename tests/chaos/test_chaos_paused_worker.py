"""Scenario 5: a worker paused (SIGSTOP) past its lease, another reclaims, the old one is fenced out.

Two real worker processes (``chaos_worker.py``) on the same PostgreSQL queue. Worker A claims the
whole batch and, mid-attempt, is frozen with SIGSTOP. Its lease runs out, worker B reclaims every
item (the claim bumps the fence) and completes it. A is resumed with SIGCONT: its handlers return
and it tries to complete with the fences it claimed under — every one must be refused
(``retry.stale_fence``), so each item is completed exactly once, by the holder of its final fence.
``DAZ_CHAOS_DISABLE=fence`` runs both workers with an unfenced ``complete`` to show the test failing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from chaos_support import LogSources, env_int, record_figures, until

from daz.store.base import NewItem
from daz.store.migrate import migrate
from daz.store.postgres import PostgresStore
from daz.testing.process import DazProcess

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.postgres]

WORKER = Path(__file__).with_name("chaos_worker.py")
ITEMS = env_int("DAZ_CHAOS_PAUSED_ITEMS", 50)
LEASE_SECONDS = 2.0
STEP_TIMEOUT = 60.0
DISABLE_FENCE = "fence" in os.environ.get("DAZ_CHAOS_DISABLE", "")


async def _prepare(dsn: str) -> None:
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE chaos_exec (item_id bigint NOT NULL, fence bigint NOT NULL, "
                           "idem_key text, worker text NOT NULL, "
                           "at timestamptz NOT NULL DEFAULT clock_timestamp())")
        await conn.execute("CREATE TABLE chaos_completions (item_id bigint NOT NULL, fence bigint NOT NULL, "
                           "worker text NOT NULL)")
    finally:
        await conn.close()
    store = await PostgresStore.connect(dsn, min_size=1, max_size=1)
    try:
        now = datetime.now(UTC)
        await store.schedule([NewItem("chaos_paused", {"i": i}, idempotency_key=f"p{i}", retry_after=now)
                              for i in range(ITEMS)])
    finally:
        await store.close()


def _worker(dsn: str, name: str, tmp_path: Path, log_files: LogSources, *extra: str) -> DazProcess:
    argv = [sys.executable, str(WORKER), "--dsn", dsn, "--name", name, "--lease", str(LEASE_SECONDS), *extra,
            *(["--no-fence"] if DISABLE_FENCE else [])]
    return DazProcess(argv, output_path=log_files.add_file(tmp_path / f"worker-{name}.out"),
                      name=f"chaos-worker-{name}", cwd=tmp_path)


def _last(proc: DazProcess, prefix: str) -> dict[str, int]:
    for line in reversed(proc.lines()):
        if line.startswith(prefix + " "):
            found: dict[str, int] = json.loads(line[len(prefix) + 1:])
            return found
    return {}


def _persisted(stats: dict[str, int]) -> int:
    """Outcomes A has written (or had refused) after its handlers returned."""
    if stats.get("returned", 0) < ITEMS:
        return 0
    return stats.get("succeeded", 0) + stats.get("stale_fence", 0)


def _events(proc: DazProcess, event: str) -> list[dict[str, Any]]:
    found = []
    for line in proc.lines():
        if line.startswith("{") and f'"{event}"' in line:
            parsed: dict[str, Any] = json.loads(line)
            if parsed.get("event") == event:
                found.append(parsed)
    return found


class _Db:
    """Fresh reads of the queue and the two record tables (the test's only view of the truth)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def count(self, sql: str, *args: object) -> int:
        value = await self.conn.fetchval(sql, *args)
        return int(value or 0)

    async def statuses(self) -> dict[str, int]:
        rows = await self.conn.fetch("SELECT status, count(*) AS n FROM daz_retry_queue GROUP BY status")
        return {r["status"]: r["n"] for r in rows}


async def _poll(db: _Db, sql: str, target: int, what: str, *args: object) -> float:
    """Bounded wait until ``sql`` counts ``target``; seconds it took."""
    started = time.monotonic()
    deadline = started + STEP_TIMEOUT
    while await db.count(sql, *args) < target:
        if time.monotonic() >= deadline:
            statuses = await db.statuses()
            raise AssertionError(f"timed out after {STEP_TIMEOUT}s waiting for {what} ({statuses})")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_paused_worker_is_fenced_out(pg_dsn: str, tmp_path: Path, log_files: LogSources) -> None:
    await _prepare(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    db = _Db(conn)
    first = _worker(pg_dsn, "A", tmp_path, log_files, "--hold-until-cont")
    second = _worker(pg_dsn, "B", tmp_path, log_files)
    try:
        async with first:
            await first.wait_for_line("^started", timeout=STEP_TIMEOUT)
            # A has claimed everything and is inside every attempt (recorded, waiting for SIGCONT).
            await _poll(db, "SELECT count(*) FROM chaos_exec WHERE worker = 'A'", ITEMS,
                        "A executing every item")
            held = await db.count("SELECT count(*) FROM daz_retry_queue WHERE status = 'processing' "
                                  "AND lease_owner LIKE 'chaos-A:%'")
            first.sigstop()
            paused_at = time.monotonic()
            async with second:
                await second.wait_for_line("^started", timeout=STEP_TIMEOUT)
                reclaim_seconds = await _poll(
                    db, "SELECT count(*) FROM chaos_completions WHERE worker = 'B'", ITEMS,
                    "B completing every item",
                )
                paused_for = time.monotonic() - paused_at
                first.sigcont()
                # A's handlers return; its completions go to the store, which must refuse them.
                await until(lambda: _persisted(_last(first, "stats")) >= ITEMS,
                            timeout=STEP_TIMEOUT, what="A to persist its late outcomes")
            b_done = _last(second, "done")
        a_done = _last(first, "done")
        execs = await conn.fetch("SELECT item_id, fence, worker FROM chaos_exec")
        completions = await conn.fetch("SELECT item_id, fence, worker FROM chaos_completions")
        final_fence = {r["id"]: r["fence"] for r in await conn.fetch("SELECT id, fence FROM daz_retry_queue")}
        statuses = await db.statuses()
    finally:
        await conn.close()

    completed_by = Counter(r["item_id"] for r in completions)
    twice = {i: n for i, n in completed_by.items() if n > 1}
    wrong_fence = [dict(r) for r in completions if r["fence"] != final_fence[r["item_id"]]]
    exec_fences: dict[int, dict[str, int]] = {}
    for r in execs:
        exec_fences.setdefault(r["item_id"], {})[r["worker"]] = r["fence"]
    stale_logged = _events(first, "retry.stale_fence")
    reclaimed_logged = _events(second, "retry.reclaimed")
    record_figures("paused_worker", {
        "items": ITEMS, "lease_seconds": LEASE_SECONDS, "held_by_A": held,
        "paused_seconds": round(paused_for, 2), "reclaimed_and_completed_seconds": round(reclaim_seconds, 2),
        "executions": Counter(r["worker"] for r in execs),
        "completions": Counter(r["worker"] for r in completions),
        "completed_twice": len(twice), "A": a_done, "B": b_done, "stale_fence_logged": len(stale_logged),
        "reclaimed_logged": len(reclaimed_logged), "fence_disabled": DISABLE_FENCE,
    })
    assert held == ITEMS, "A did not hold the whole batch when it was paused"
    assert statuses == {"completed": ITEMS}, statuses
    assert not twice, f"{len(twice)} items completed more than once (late completions accepted): {twice}"
    assert not wrong_fence, f"completions under a fence that no longer owned the item: {wrong_fence[:5]}"
    assert set(completed_by) == set(final_fence), "some item was never completed"
    assert {r["worker"] for r in completions} == {"B"}
    # Every item ran twice (A's stalled attempt, B's reclaim) — why handlers must be idempotent —
    # and B's run carries the newer fence.
    assert all(set(f) == {"A", "B"} and f["B"] > f["A"] for f in exec_fences.values()), exec_fences
    assert a_done.get("stale_fence") == ITEMS, a_done
    assert a_done.get("succeeded", 0) == 0, a_done
    assert len(stale_logged) == ITEMS
    assert b_done.get("reclaimed") == ITEMS, b_done
    assert b_done.get("succeeded") == ITEMS, b_done
    assert paused_for > LEASE_SECONDS, "B completed before A's lease could have expired"
