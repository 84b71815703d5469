"""The process under test in scenario 5 (paused worker): one retry worker over PostgreSQL.

``python chaos_worker.py --dsn DSN --name A [--hold-until-cont] [--no-fence]`` opens the store and
runs a ``RetryQueue`` (one worker, short lease) whose handler for ``chaos_paused`` records every
execution — item id, fence, idempotency key, worker name — in ``chaos_exec``. Every completion the
store accepts is recorded in ``chaos_completions`` (item id, fence, worker), so the test sees, from
the database, which claims were allowed to finish.

``--hold-until-cont``: after recording, the handler waits for this process's SIGCONT, so the pause
the test inflicts (SIGSTOP) always lands mid-attempt, with the items claimed and leased.
``--no-fence`` is the test-only switch that shows scenario 5 failing without its mechanism: the
store's ``complete_many`` completes by id, ignoring the fence (and whether the row is still ours).

Prints ``started``, then ``stats <json>`` (the queue's counters plus ``returned``: handler calls that
finished) whenever they change, and ``done <json>`` after SIGTERM. Logs go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
from collections.abc import Sequence
from typing import Final, LiteralString

import asyncpg

from daz.clock import SystemClock
from daz.config import RetryConfig
from daz.logging import configure_logging
from daz.metrics import DazMetrics
from daz.retry.queue import RetryQueue
from daz.store.base import QueueItem
from daz.store.postgres import PostgresStore

OPERATION: Final = "chaos_paused"
HOLD_TIMEOUT_SECONDS: Final = 120.0
STATS_INTERVAL_SECONDS: Final = 0.1

RECORD_EXEC: Final[LiteralString] = (
    "INSERT INTO chaos_exec (item_id, fence, idem_key, worker) VALUES ($1, $2, $3, $4)"
)
RECORD_COMPLETION: Final[LiteralString] = (
    "INSERT INTO chaos_completions (item_id, fence, worker) "
    "SELECT unnest($1::bigint[]), unnest($2::bigint[]), $3"
)
UNFENCED_COMPLETE: Final[LiteralString] = """
UPDATE daz_retry_queue SET status = 'completed', lease_until = NULL, lease_owner = NULL, updated_at = now()
WHERE id = ANY($1::bigint[])
RETURNING id
"""


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class RecordingStore(PostgresStore):
    """The real store; accepted completions are also written to ``chaos_completions``."""

    side: asyncpg.Pool
    worker: str = "?"
    fenced: bool = True

    async def complete_many(self, claims: Sequence[tuple[int, int]]) -> list[int]:
        if self.fenced:
            stale = await super().complete_many(claims)
        else:
            rows = await self.side.fetch(UNFENCED_COMPLETE, [c[0] for c in claims])
            done = {r[0] for r in rows}
            stale = [c[0] for c in claims if c[0] not in done]
        accepted = [c for c in claims if c[0] not in set(stale)]
        if accepted:
            await self.side.execute(RECORD_COMPLETION, [c[0] for c in accepted], [c[1] for c in accepted],
                                    self.worker)
        return stale


def retry_config(lease: float) -> RetryConfig:
    return RetryConfig.model_validate({
        "poll_interval_seconds": 0.25, "worker_count": 1, "batch_size": 500, "lease_seconds": lease,
        "heartbeat_interval_seconds": lease / 4, "stats_interval_seconds": 1,
        "retry_policies": {OPERATION: {"max_retries": 5, "initial_delay_seconds": 0.1,
                                       "timeout_seconds": 60}},
    })


async def main(args: argparse.Namespace) -> None:
    configure_logging("info", "json", stream=sys.stdout)
    loop = asyncio.get_running_loop()
    stopping, resumed = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGCONT, resumed.set)
    side = await asyncpg.create_pool(args.dsn, min_size=1, max_size=4)
    store = await RecordingStore.connect(args.dsn, clock=SystemClock(), min_size=1, max_size=4)
    assert isinstance(store, RecordingStore)  # connect() builds cls(...)
    store.side, store.worker, store.fenced = side, args.name, not args.no_fence
    returned = 0

    async def handler(item: QueueItem) -> None:
        nonlocal returned
        await side.execute(RECORD_EXEC, item.id, item.fence, item.idempotency_key, args.name)
        if args.hold_until_cont:
            async with asyncio.timeout(HOLD_TIMEOUT_SECONDS):
                await resumed.wait()
        returned += 1

    queue = RetryQueue(store, retry_config(args.lease), None, DazMetrics(), SystemClock(), random.Random(),
                       owner_prefix=f"chaos-{args.name}")
    queue.register(OPERATION, handler)

    async def report() -> None:
        last = ""
        while not stopping.is_set():
            line = json.dumps({**queue.stats, "returned": returned}, sort_keys=True)
            if line != last:
                say("stats " + line)
                last = line
            try:
                async with asyncio.timeout(STATS_INTERVAL_SECONDS):
                    await stopping.wait()
            except TimeoutError:
                continue

    say("started")
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(queue.run(stopping), name=f"chaos-worker.{args.name}.retry")
            tg.create_task(report(), name=f"chaos-worker.{args.name}.stats")
    finally:
        await store.close()
        await side.close()
    say("done " + json.dumps({**queue.stats, "returned": returned}, sort_keys=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--hold-until-cont", action="store_true")
    parser.add_argument("--no-fence", action="store_true")
    asyncio.run(main(parser.parse_args()))
