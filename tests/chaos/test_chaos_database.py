"""Scenarios 3 and 4: a database outage under load, and the writer crashing during it.

A throwaway PostgreSQL cluster; ``chaos_writer.py`` (daz's SQL service, retry queue, breaker gate,
retry budget and spool) in a subprocess issuing idempotent chat-log-like writes at
``DAZ_CHAOS_DB_RATE`` per second (default 1000). The cluster is stopped for
``DAZ_CHAOS_DB_OUTAGE_SECONDS`` (default 8; the issue's full value, 60, in the long run) and started
again. The table has no unique key on purpose: a duplicate would show up as a second row.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from chaos_support import DB_PASSWORD, LogSources, env_float, env_int, record_figures, until

from daz.store.migrate import migrate
from daz.testing.pgcluster import PgCluster
from daz.testing.process import DazProcess, ProcessError

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.cluster]

WRITER = Path(__file__).with_name("chaos_writer.py")
RATE = env_float("DAZ_CHAOS_DB_RATE", 1000.0)
OUTAGE_SECONDS = env_float("DAZ_CHAOS_DB_OUTAGE_SECONDS", 8.0)
BEFORE_SECONDS = 2.0
AFTER_SECONDS = 3.0
KILLS = env_int("DAZ_CHAOS_KILLS", 3)
KILL_ATTEMPTS = 4 * KILLS
# How long to watch for a writer holding leased items before calling the scenario broken, counted
# while the database is up: items reach ``processing`` only through it, and the outage may be longer.
KILL_WATCH_SECONDS = 60.0
# The queue logs one ``retry.reclaimed`` line per item it takes over from an expired lease.
RECLAIMED_LINE = re.compile(r"retry\.reclaimed\b.*?\bid=(\d+)")
SETTLE_TIMEOUT = env_float("DAZ_CHAOS_DB_SETTLE_SECONDS", 120.0)
# Off only to diagnose: shows whether a slow drain comes from the retry budget.
BUDGET = env_int("DAZ_CHAOS_DB_BUDGET", 1) == 1
# Only to show the scenario failing without its mechanism: DAZ_CHAOS_DISABLE=spool.
DISABLE_SPOOL = "spool" in os.environ.get("DAZ_CHAOS_DISABLE", "")
# retry_budget.min_per_second of the writer, only to diagnose; unset: the product default.
BUDGET_FLOOR = os.environ.get("DAZ_CHAOS_DB_BUDGET_FLOOR")


def _count() -> int:
    return int(RATE * (BEFORE_SECONDS + OUTAGE_SECONDS + AFTER_SECONDS))


def _dsn(cluster: PgCluster) -> str:
    # Trust auth accepts any password: it is there to be leaked, so the secrets scan can catch it.
    return cluster.dsn.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)


async def _prepare(cluster: PgCluster) -> None:
    await migrate(cluster.dsn)
    conn = await asyncpg.connect(cluster.dsn)
    try:
        await conn.execute("CREATE TABLE chaos_rows (k text NOT NULL, at timestamptz NOT NULL DEFAULT now())")
    finally:
        await conn.close()


async def _rows(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT k, count(*) AS n FROM chaos_rows GROUP BY k")
    finally:
        await conn.close()
    return {r["k"]: r["n"] for r in rows}


async def _queue_statuses(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM daz_retry_queue GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in rows}


def _writer(cluster: PgCluster, tmp_path: Path, log_files: LogSources, start: int, *extra: str) -> DazProcess:
    argv = [sys.executable, str(WRITER), "--dsn", _dsn(cluster), "--spool", str(tmp_path / "spool.sqlite"),
            "--start", str(start), "--count", str(_count()), "--rate", str(RATE), *extra,
            *(["--budget-floor", BUDGET_FLOOR] if BUDGET_FLOOR else []), *([] if BUDGET else ["--no-budget"]),
            *(["--no-spool"] if DISABLE_SPOOL else [])]
    return DazProcess(argv, output_path=log_files.add_file(tmp_path / "writer.out"), name="chaos-writer",
                      cwd=tmp_path)


def _acks(proc: DazProcess) -> list[int]:
    return [int(line.split()[1]) for line in proc.lines() if line.startswith("ack ")]


def _done(proc: DazProcess) -> dict[str, Any]:
    for line in reversed(proc.lines()):
        if line.startswith("done "):
            result: dict[str, Any] = json.loads(line[5:])
            return result
    raise AssertionError(f"writer printed no result:\n{proc.tail()}")


def _check_rows(rows: dict[str, int], acked: set[int]) -> tuple[int, int]:
    lost = len({f"k{i}" for i in acked} - set(rows))
    duplicates = sum(n - 1 for n in rows.values() if n > 1)
    return lost, duplicates


async def _wait_done(proc: DazProcess) -> float:
    started = time.monotonic()
    await proc.wait_for_line(r"^done ", timeout=SETTLE_TIMEOUT)
    await proc.wait(30)
    return time.monotonic() - started


async def _start_like_a_supervisor(proc: DazProcess) -> int:
    """Start until it runs, as systemd's Restart=always would: during the outage the writer exits at
    start-up (its store is unreachable), and is started again half a second later (bounded)."""
    for attempt in range(1, 241):
        await proc.start()
        try:
            await proc.wait_for_line("^started", timeout=60)
        except ProcessError:
            await proc.wait(10)
            await asyncio.sleep(0.5)
            continue
        return attempt
    raise AssertionError(f"the writer never started again:\n{proc.tail()}")


async def test_database_outage_under_load(
    pg_cluster: PgCluster, tmp_path: Path, log_files: LogSources
) -> None:
    await _prepare(pg_cluster)
    proc = _writer(pg_cluster, tmp_path, log_files, 0)
    async with proc:
        await proc.wait_for_line("^started", timeout=60)
        began = time.monotonic()
        await until(lambda: len(_acks(proc)) >= RATE * BEFORE_SECONDS, timeout=60, what="load before outage")
        await pg_cluster.astop("fast")
        stopped = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)
        await pg_cluster.astart()
        restarted = time.monotonic()
        drain_seconds = await _wait_done(proc)
    done = _done(proc)
    acks = _acks(proc)
    rows = await _rows(pg_cluster.dsn)
    statuses = await _queue_statuses(pg_cluster.dsn)
    lost, duplicates = _check_rows(rows, set(acks))
    record_figures("database_outage", {
        "writes": _count(), "acked": len(acks), "target_rate": RATE,
        "achieved_rate": round(len(acks) / max(1e-9, restarted + drain_seconds - began), 1),
        "outage_seconds": round(restarted - stopped, 1), "recover_seconds": round(drain_seconds, 2),
        "lost": lost, "duplicates": duplicates, "queued": done["queued"], "spool_peak": done["spool_peak"],
        "spool_drained": done["spool_drained"], "breaker_opened": done["breaker_opened"],
        "breaker_closed": done["breaker_closed"], "budget_max_use": done["budget_max_use"],
        "queue_statuses": statuses,
    })
    assert proc.exit_codes[-1] == 0, proc.tail()
    assert done["lost"] == 0
    assert len(acks) == _count()
    assert lost == 0, f"{lost} acknowledged writes missing"
    assert duplicates == 0, f"{duplicates} writes applied twice"
    assert len(rows) == _count()
    assert done["settled"] is True
    assert done["spool"] == 0, "spool not drained"
    assert done["spool_drained"] > 0, "the outage never reached the spool: the scenario tested nothing"
    assert done["breaker_opened"] >= 1, "the breaker never opened"
    assert done["breaker_closed"] >= 1, "the breaker never closed again"
    assert done["budget_violations"] == 0, f"retry budget exceeded (max use {done['budget_max_use']})"
    assert statuses.get("processing", 0) == 0, statuses
    assert statuses.get("pending", 0) == 0, statuses


async def _owned_processing(conn: asyncpg.Connection, pid: int) -> list[int]:
    """Ids of items in ``processing`` leased by the writer with this pid (owner ``host:pid:...``)."""
    rows = await conn.fetch(
        "SELECT id FROM daz_retry_queue WHERE status = 'processing' AND lease_owner LIKE $1", f"%:{pid}:%"
    )
    return [r["id"] for r in rows]


class _Watcher:
    """A connection to the cluster that survives its outages (reconnects, bounded by the caller)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None

    async def owned_processing(self, pid: int) -> list[int] | None:
        """None while the database cannot be asked."""
        try:
            if self.conn is None or self.conn.is_closed():
                self.conn = await asyncpg.connect(self.dsn, timeout=1)
            return await _owned_processing(self.conn, pid)
        # InternalClientError: asyncpg's state machine when the server vanished mid-query.
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                TimeoutError):
            await self.close()
            return None

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.terminate()  # no goodbye round-trip to a server that may be gone


def _reclaimed_ids(proc: DazProcess) -> list[int]:
    return [int(m.group(1)) for line in proc.lines() if (m := RECLAIMED_LINE.search(line))]


async def test_writer_killed_three_times_during_the_outage(
    pg_cluster: PgCluster, tmp_path: Path, log_files: LogSources
) -> None:
    """The kills are aimed: each lands while the writer holds queue items in ``processing`` (seen
    in the database, and confirmed after the kill: those rows are orphaned under a dead lease), so
    the next writer must reclaim them. A kill that missed (its items finished first) is retried,
    at most ``KILL_ATTEMPTS`` in all."""
    rng = random.Random(env_int("DAZ_CHAOS_SEED", 4321))
    await _prepare(pg_cluster)
    proc = _writer(pg_cluster, tmp_path, log_files, 0)
    kills: list[dict[str, Any]] = []
    orphaned: set[int] = set()
    watcher = _Watcher(pg_cluster.dsn)
    async with proc:
        await proc.wait_for_line("^started", timeout=60)
        began = time.monotonic()
        database_up = asyncio.Event()
        database_up.set()

        async def outage() -> None:
            await asyncio.sleep(max(0.0, began + BEFORE_SECONDS - time.monotonic()))
            database_up.clear()
            await pg_cluster.astop("fast")
            await asyncio.sleep(OUTAGE_SECONDS)
            await pg_cluster.astart()
            database_up.set()

        async def aim(pid: int) -> None:
            """Until this writer leases some items: at most KILL_WATCH_SECONDS of database uptime.

            Items are leased only while the database is up (before the outage the writes succeed
            directly and nothing is queued; during it nothing can be claimed), so the window starts
            again whenever the database is down: a 60 s outage must not use up a 60 s window. The
            outage is finite, so the wait stays bounded."""
            deadline = time.monotonic() + KILL_WATCH_SECONDS
            while time.monotonic() < deadline:
                if not database_up.is_set():
                    deadline = time.monotonic() + KILL_WATCH_SECONDS
                elif await watcher.owned_processing(pid):
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"writer {pid} never held items in processing within {KILL_WATCH_SECONDS}s "
                                 f"({len(kills)} kills so far: {kills})")

        async def crashes() -> None:
            landed = 0
            while landed < KILLS:
                if len(kills) >= KILL_ATTEMPTS:
                    raise AssertionError(
                        f"only {landed} of {len(kills)} kills landed on processing items: {kills}"
                    )
                # A seeded pause first, so the kills do not all fall on the first batch of a drain.
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                pid = proc.pid
                assert pid is not None, proc.tail()
                await aim(pid)
                acked = _acks(proc)
                await proc.kill()
                # The process is dead: whatever it still leased stays in processing until reclaimed.
                held = await watcher.owned_processing(pid) or []
                orphaned.update(held)
                landed += bool(held)
                start = max(acked) + 1 if acked else 0
                kills.append({"at_seconds": round(time.monotonic() - began, 2), "acked": len(acked),
                              "restart_from": start, "orphaned_processing": len(held)})
                proc.argv[proc.argv.index("--start") + 1] = str(start)
                kills[-1]["start_attempts"] = await _start_like_a_supervisor(proc)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(outage(), name="chaos.outage")
                tg.create_task(crashes(), name="chaos.crashes")
        finally:
            await watcher.close()
        drain_seconds = await _wait_done(proc)
    done = _done(proc)
    acks = _acks(proc)
    rows = await _rows(pg_cluster.dsn)
    statuses = await _queue_statuses(pg_cluster.dsn)
    conn = await asyncpg.connect(pg_cluster.dsn)
    try:
        unexplained = await conn.fetchval(
            "SELECT count(*) FROM daz_retry_queue "
            "WHERE status = 'dead_letter' AND coalesce(last_error, '') = ''")
        orphan_statuses = {r["status"]: r["n"] for r in await conn.fetch(
            "SELECT status, count(*) AS n FROM daz_retry_queue WHERE id = ANY($1::bigint[]) GROUP BY status",
            sorted(orphaned))}
    finally:
        await conn.close()
    reclaimed = _reclaimed_ids(proc)
    lost, duplicates = _check_rows(rows, set(acks))
    record_figures("crash_under_load", {
        "kills": kills, "writes": _count(), "acked": len(set(acks)), "lost": lost, "duplicates": duplicates,
        "orphaned_by_kills": len(orphaned), "reclaimed": len(reclaimed),
        "reclaimed_distinct": len(set(reclaimed)),
        "orphan_statuses": orphan_statuses,
        "recover_seconds": round(drain_seconds, 2), "spool_peak_last_run": done["spool_peak"],
        "queue_statuses": statuses,
    })
    print(f"RECLAIMED orphaned by kills {len(orphaned)}, reclaimed {len(reclaimed)} "
          f"({len(set(reclaimed))} distinct), kills {[k['orphaned_processing'] for k in kills]}")
    assert sum(1 for k in kills if k["orphaned_processing"]) == KILLS, kills
    assert proc.exit_codes.count(-9) == len(kills)
    assert proc.exit_codes[-1] == 0, proc.tail()
    assert set(acks) == set(range(_count())), "every index acknowledged by some run"
    assert lost == 0, f"{lost} acknowledged writes missing"
    assert duplicates == 0, f"{duplicates} writes applied twice"
    assert done["settled"] is True
    assert done["spool"] == 0
    never = sorted(orphaned - set(reclaimed))
    assert not never, f"{len(never)} orphaned items never reclaimed: {never[:20]}"
    assert set(orphan_statuses) <= {"completed", "dead_letter"}, orphan_statuses
    assert statuses.get("processing", 0) == 0, f"items stuck in processing: {statuses}"
    assert statuses.get("pending", 0) == 0, statuses
    assert set(statuses) <= {"completed", "dead_letter"}, statuses
    assert unexplained == 0, f"{unexplained} dead-lettered items without a reason"
