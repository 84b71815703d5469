"""The process harness against a tiny ticking Python child."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from daz.testing.process import DazProcess, ProcessError

TICKER = r"""
import os, signal, sys, time
def bye(*_):
    print("bye", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready pid=%d token=%s" % (os.getpid(), os.environ.get("TICK_TOKEN")), flush=True)
for i in range(100000):
    print("tick", i, flush=True)
    time.sleep(0.02)
"""

STUBBORN = r"""
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
for _ in range(10000):
    time.sleep(0.01)
"""


def _ticker(tmp_path: Path, script: str = TICKER) -> DazProcess:
    return DazProcess(
        [sys.executable, "-c", script],
        env={"TICK_TOKEN": "abc"},
        output_path=tmp_path / "child.log",
        name="ticker",
    )


def _ticks(proc: DazProcess) -> int:
    return sum(1 for line in proc.lines() if line.startswith("tick"))


async def test_waits_for_a_line_and_passes_env(tmp_path: Path) -> None:
    async with _ticker(tmp_path) as proc:
        line = await proc.wait_for_line(r"ready pid=\d+", timeout=10)
        assert f"pid={proc.pid}" in line
        assert "token=abc" in line
        await proc.wait_for_line("tick 3", timeout=10)
    assert proc.returncode == 0, "SIGTERM handler ran"
    assert "bye" in proc.output()


async def test_sigstop_freezes_and_sigcont_resumes(tmp_path: Path) -> None:
    async with _ticker(tmp_path) as proc:
        await proc.wait_for_line("tick 1", timeout=10)
        proc.sigstop()
        await asyncio.sleep(0.1)  # let a tick already in the pipe land
        frozen = _ticks(proc)
        await asyncio.sleep(0.3)
        assert _ticks(proc) == frozen, "a stopped process prints nothing"
        proc.sigcont()
        await proc.wait_for_line(f"tick {frozen + 2}", timeout=10)


async def test_sigkill_then_restart_appends_output(tmp_path: Path) -> None:
    proc = _ticker(tmp_path)
    await proc.start()
    try:
        first = await proc.wait_for_line("ready", timeout=10)
        proc.sigkill()
        assert await proc.wait(10) == -signal.SIGKILL
        assert not proc.is_running()
        await proc.restart()
        second = await proc.wait_for_line("ready", timeout=10)
        assert second != first, "wait_for_line looks only at output since the latest start"
        assert proc.starts == 2
        assert proc.exit_codes == [-signal.SIGKILL]
        assert sum(1 for line in proc.lines() if line.startswith("ready")) == 2
    finally:
        await proc.stop()


async def test_wait_for_line_fails_fast_when_the_process_dies(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('oops'); raise SystemExit(3)"]
    proc = DazProcess(argv, output_path=tmp_path / "x.log")
    async with proc:
        with pytest.raises(ProcessError, match="exited \\(3\\)"):
            await proc.wait_for_line("never", timeout=10)


async def test_wait_for_line_times_out(tmp_path: Path) -> None:
    async with _ticker(tmp_path) as proc:
        with pytest.raises(ProcessError, match=r"within 0\.2s"):
            await proc.wait_for_line("never printed", timeout=0.2)


async def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = _ticker(tmp_path, STUBBORN)
    async with proc:
        await proc.wait_for_line("ready", timeout=10)
        code = await proc.stop(grace=0.3)
    assert code == -signal.SIGKILL


async def test_stop_resumes_a_paused_process(tmp_path: Path) -> None:
    async with _ticker(tmp_path) as proc:
        await proc.wait_for_line("ready", timeout=10)
        proc.sigstop()
    assert proc.returncode == 0, "stop() sends SIGCONT so the SIGTERM handler can run"


def test_daz_run_uses_this_interpreter() -> None:
    proc = DazProcess.daz_run("--config", "x.json")
    assert proc.argv == [sys.executable, "-m", "daz", "run", "--config", "x.json"]
    proc.output_path.unlink()
