"""Dead-letter path end to end: an always-failing operation is dead-lettered after max_retries with
its last error, ``daz retry`` shows it and replays it, and it succeeds once the handler is fixed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daz.config import RetryConfig, RetryPolicyConfig
from daz.errors import SqlError
from daz.retry import RetryQueue
from daz.store import NewItem, QueueItem, RetryStore, open_store

pytestmark = pytest.mark.slow


def daz(*args: str, url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "daz", "retry", *args, "--database-url", url],
        capture_output=True, text=True, input=stdin, timeout=60, env=env, check=False,
    )


async def run_until(store: RetryStore, queue: RetryQueue, item_id: int, status: str) -> None:
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(queue.run(stopping), name="test.queue")
        for _ in range(500):
            if (await store.get(item_id)).status == status:
                break
            await asyncio.sleep(0.01)
        stopping.set()
    assert (await store.get(item_id)).status == status


def make_queue(store: RetryStore) -> RetryQueue:
    policy = RetryPolicyConfig(max_retries=3, initial_delay_seconds=0.01, max_delay_seconds=0.05,
                               backoff_multiplier=2, jitter=0)
    return RetryQueue(store, RetryConfig(poll_interval_seconds=0.1, retry_policies={"sql_operation": policy}))


async def test_dead_letter_replay_and_success_through_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'daz.db'}"
    store = await open_store(url)
    attempts = 0

    async def broken(item: QueueItem) -> None:
        nonlocal attempts
        attempts += 1
        raise SqlError(f"relation \"chat\" does not exist (try {attempts})", sqlstate="08006", retryable=True)

    queue = make_queue(store)
    queue.register("sql_operation", broken)
    [item_id] = await queue.schedule(
        NewItem("sql_operation", {"sql": "INSERT ..."}, correlation_id="corr-dl")
    )
    await run_until(store, queue, item_id, "dead_letter")
    assert attempts == 3
    await store.close()

    listed = daz("list", "--status", "dead_letter", url=url)
    assert listed.returncode == 0, listed.stderr
    assert str(item_id) in listed.stdout
    assert "sql_operation" in listed.stdout
    shown = daz("show", str(item_id), url=url)
    assert shown.returncode == 0, shown.stderr
    assert 'gave up after 3 attempt(s): relation "chat" does not exist (try 3)' in shown.stdout
    assert "corr-dl" in shown.stdout
    stats = daz("stats", url=url)
    assert "dead_letter" in stats.stdout

    declined = daz("replay", "--all-dead", url=url, stdin="n\n")
    assert declined.returncode == 4
    replayed = daz("replay", str(item_id), url=url)
    assert replayed.returncode == 0, replayed.stderr
    again = daz("replay", str(item_id), url=url)
    assert again.returncode == 3
    assert "not a dead letter" in again.stderr
    unknown = daz("show", "424242", url=url)
    assert unknown.returncode == 3
    assert "no queue item with id 424242" in unknown.stderr

    store = await open_store(url)
    try:
        item = await store.get(item_id)
        assert (item.status, item.attempt) == ("pending", 0)
        fixed_runs: list[str] = []

        async def fixed(item: QueueItem) -> None:
            fixed_runs.append(item.correlation_id)

        queue = make_queue(store)
        queue.register("sql_operation", fixed)
        await run_until(store, queue, item_id, "completed")
        assert fixed_runs == ["corr-dl"]
    finally:
        await store.close()
