"""A retry-queue process for the crash and restart tests (run as a script, never collected).

    python queue_proc.py URL --mode normal|hang|slow [--lease 2] [--batch 50] [--effects FILE]

Handler side effects are fenced: on PostgreSQL the effect row is written only while the item is
still held with this attempt's fence (``crash_effects``); on SQLite a line ``key fence pid`` is
appended to ``--effects``. Every handler start is recorded too (``crash_starts`` / stdout).
SIGTERM stops the queue cooperatively; the last stdout line is the queue's stats as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sys

import asyncpg
import structlog

from daz.config import RetryConfig, RetryPolicyConfig
from daz.retry import RetryQueue
from daz.store import QueueItem, open_store

FENCED_EFFECT = """
INSERT INTO crash_effects (key, fence, pid)
SELECT $1, $2, $3
WHERE EXISTS (SELECT 1 FROM daz_retry_queue WHERE id = $4 AND fence = $2 AND status = 'processing')
"""


async def main(args: argparse.Namespace) -> None:
    pid = os.getpid()
    store = await open_store(args.url, pool_min_size=1, pool_max_size=4)
    side: asyncpg.Pool | None = None
    if args.url.startswith("postgres"):
        side = await asyncpg.create_pool(args.url, min_size=1, max_size=4)
    cfg = RetryConfig(
        worker_count=1, batch_size=args.batch, lease_seconds=args.lease,
        heartbeat_interval_seconds=args.lease / 4, poll_interval_seconds=0.5,
        default_policy=RetryPolicyConfig(
            max_retries=5, initial_delay_seconds=0.1, jitter=0, timeout_seconds=60
        ),
        retry_policies={},
    )
    queue = RetryQueue(store, cfg, None, None, None, random.Random(pid))

    async def handler(item: QueueItem) -> None:
        key = item.idempotency_key or str(item.id)
        if side is not None:
            await side.execute("INSERT INTO crash_starts (key, fence, pid) VALUES ($1, $2, $3)",
                               key, item.fence, pid)
        print(f"START {key} {item.fence}", flush=True)
        if args.mode == "hang":
            await asyncio.sleep(3600)
        if args.mode == "slow":
            await asyncio.sleep(args.slow)
        if side is not None:
            await side.execute(FENCED_EFFECT, key, item.fence, pid, item.id)
        elif args.effects:
            with open(args.effects, "a", encoding="utf-8") as out:
                out.write(f"{key} {item.fence} {pid}\n")

    queue.register(args.operation_type, handler)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print("READY", flush=True)
    await queue.run(stopping)
    await store.close()
    if side is not None:
        await side.close()
    print(json.dumps(queue.stats), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--mode", choices=["normal", "hang", "slow"], default="normal")
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--slow", type=float, default=1.0)
    p.add_argument("--effects", default=None)
    p.add_argument("--operation-type", default="crash_op")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(p.parse_args()))
