"""Outage on a throwaway cluster: 2,000 idempotent execs at ~100/s, database stopped 30 s mid-way.

Every exec must be applied exactly once (rows counted by key), the spool must end empty, and the
``database`` breaker must have opened. The second test also SIGKILLs the writer during the outage and
lets a fresh process (same spool file) finish the job after the database is back.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tests.conftest import require

from daz.store.migrate import migrate
from daz.testing.pgcluster import PgCluster, unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.postgres]

WRITER = Path(__file__).with_name("outage_writer.py")
EXECS = 2000
RATE = 100.0
OUTAGE_SECONDS = 30.0
STOP_AFTER_ACKS = 800
PROCESS_TIMEOUT_SECONDS = 150.0


class Writer:
    """The writer subprocess and what it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.acks: set[int] = set()
        self.lines: list[str] = []
        self.done: dict[str, Any] | None = None
        self.stderr_path: Path | None = None

    @classmethod
    async def start(cls, mode: str, dsn: str, spool: Path) -> Writer:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        with (spool.parent / f"{mode}.stderr").open("ab") as errors:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(WRITER), mode, "--dsn", dsn, "--spool", str(spool),
                "--count", str(EXECS), "--rate", str(RATE),
                stdout=asyncio.subprocess.PIPE, stderr=errors, env=env,
            )
        writer = cls(proc)
        writer.stderr_path = spool.parent / f"{mode}.stderr"
        return writer

    def stderr_tail(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-3000:]

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("ack "):
                self.acks.add(int(line.split()[1]))
            elif line.startswith("done "):
                self.done = json.loads(line[5:])
            else:
                self.lines.append(line)

    async def wait_acks(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acks) < count:
            assert time.monotonic() < deadline, f"only {len(self.acks)} acks; output: {self.lines[-5:]}"
            assert self.proc.returncode is None, f"writer exited early: {self.lines[-5:]}"
            await asyncio.sleep(0.05)


async def _prepare(cluster: PgCluster) -> None:
    await migrate(cluster.dsn)
    conn = await asyncpg.connect(cluster.dsn)
    try:
        await conn.execute("CREATE TABLE outage_rows (k text NOT NULL, at timestamptz DEFAULT now())")
    finally:
        await conn.close()


async def _applied(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT k, count(*) AS n FROM outage_rows GROUP BY k")
    finally:
        await conn.close()
    return {r["k"]: r["n"] for r in rows}


def _spool_depth(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM daz_spool").fetchone()[0])
    finally:
        conn.close()


async def _run_until_exit(writer: Writer) -> None:
    async with asyncio.timeout(PROCESS_TIMEOUT_SECONDS):
        await writer.proc.wait()


async def test_outage_every_exec_applied_exactly_once(tmp_path: Path) -> None:
    require(unavailable_reason() is None, f"throwaway cluster: {unavailable_reason()}")
    spool = tmp_path / "spool.sqlite"
    async with PgCluster() as cluster:
        await _prepare(cluster)
        t0 = time.monotonic()
        writer = await Writer.start("write", cluster.dsn, spool)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.read(), name="test.writer.read")
            await writer.wait_acks(STOP_AFTER_ACKS, timeout=60)
            await cluster.astop("fast")
            stopped_at = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)
            await cluster.astart()
            restarted_at = time.monotonic()
            await _run_until_exit(writer)
        applied = await _applied(cluster.dsn)
    done = writer.done
    print(f"outage {restarted_at - stopped_at:.1f}s; total {time.monotonic() - t0:.1f}s; writer: {done}; "
          f"other output: {writer.lines[-3:]}")
    assert writer.proc.returncode == 0, writer.stderr_tail()
    assert done is not None
    assert done["lost"] == 0, [line for line in writer.lines if line.startswith("lost")]
    assert done["settled"] is True
    assert done["spool_items"] == 0
    assert done["spool_drained"] > 0  # the outage really went through the spool
    assert done["breaker_opened"] >= 1  # and the breaker saw it
    assert done["queued"] > 0
    assert len(writer.acks) == EXECS
    assert set(applied) == {f"k{i}" for i in range(EXECS)}
    duplicates = {k: n for k, n in applied.items() if n != 1}
    assert duplicates == {}


async def test_outage_with_the_writer_killed_mid_outage(tmp_path: Path) -> None:
    require(unavailable_reason() is None, f"throwaway cluster: {unavailable_reason()}")
    spool = tmp_path / "spool.sqlite"
    async with PgCluster() as cluster:
        await _prepare(cluster)
        writer = await Writer.start("write", cluster.dsn, spool)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.read(), name="test.writer.read")
            await writer.wait_acks(STOP_AFTER_ACKS, timeout=60)
            await cluster.astop("fast")
            acks_at_stop = len(writer.acks)
            await writer.wait_acks(acks_at_stop + 300, timeout=OUTAGE_SECONDS / 2)  # spooling now
            writer.proc.send_signal(signal.SIGKILL)
            await writer.proc.wait()
        spooled_at_kill = _spool_depth(spool)
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        await cluster.astart()
        recovery = await Writer.start("recover", cluster.dsn, spool)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(recovery.read(), name="test.recovery.read")
            await _run_until_exit(recovery)
        applied = await _applied(cluster.dsn)
    print(f"acked before kill {len(writer.acks)} (at stop {acks_at_stop}); "
          f"spooled at kill {spooled_at_kill}; recovery: {recovery.done}")
    assert writer.proc.returncode == -signal.SIGKILL
    assert spooled_at_kill >= 300
    assert recovery.proc.returncode == 0, recovery.stderr_tail()
    assert recovery.done is not None
    assert recovery.done["settled"] is True
    assert recovery.done["spool_items"] == 0
    assert _spool_depth(spool) == 0
    assert recovery.done["spool_drained"] == spooled_at_kill
    # every exec the writer was told about is applied, and nothing is applied twice
    missing = {f"k{i}" for i in writer.acks} - set(applied)
    assert missing == set()
    assert {k: n for k, n in applied.items() if n != 1} == {}
    assert len(applied) <= len(writer.acks) + 1  # at most the one exec in flight at the kill
