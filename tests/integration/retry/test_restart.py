"""Restart on the embedded SQLite store: 1,000 pending items, the process stopped mid-way and
started again; every item completes and none is lost or run twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daz.store import NewItem, open_store

pytestmark = pytest.mark.slow

PROC = Path(__file__).with_name("queue_proc.py")
ITEMS = 1000


def effects(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split()[0::3] if path.exists() else []


def wait_until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def start(url: str, effects_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PROC), url, "--effects", str(effects_path), "--lease", "5", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(proc: subprocess.Popen[str]) -> dict[str, int]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


async def test_thousand_items_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'daz.db'}"
    done = tmp_path / "effects.txt"
    store = await open_store(url)
    await store.schedule([NewItem("crash_op", {"n": i}, idempotency_key=f"k{i}") for i in range(ITEMS)])
    await store.close()

    first = start(url, done, "--mode", "slow", "--slow", "0.2", "--batch", "50")
    try:
        wait_until(lambda: len(effects(done)) >= 100, 60)
    finally:
        first_stats = stop(first)
    before = effects(done)
    assert 100 <= len(before) < ITEMS  # stopped part-way through
    assert first_stats["succeeded"] == len(before)

    second = start(url, done, "--mode", "normal", "--batch", "100")
    try:
        wait_until(lambda: len(effects(done)) >= ITEMS, 90)
    finally:
        second_stats = stop(second)
    keys = effects(done)
    assert sorted(keys) == sorted(f"k{i}" for i in range(ITEMS))  # all done, none twice
    assert second_stats["succeeded"] == ITEMS - len(before)
    store = await open_store(url)
    try:
        rows = {r.status: r.count for r in await store.stats()}
    finally:
        await store.close()
    assert rows == {"completed": ITEMS}
