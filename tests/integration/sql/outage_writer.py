"""A small daz process for the outage tests: SQL service + retry queue + spool on one PostgreSQL.

``write``: issue ``count`` idempotent execs (key ``k<i>``) at ``rate`` per second, printing
``ack <i>`` once each exec returned (applied, or queued to retry). ``recover``: issue nothing. Both
then keep the queue and the spool drainer running until the spool is empty and no ``sql_operation``
is pending, print ``done <json>`` and exit. Run by tests/integration/sql/test_sql_outage.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from daz.clock import SystemClock
from daz.config import DazConfig
from daz.errors import SqlRetryScheduled
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.resilience.registry import BreakerRegistry
from daz.retry.queue import RetryQueue
from daz.retry.spool import Spool, SpoolDrainer
from daz.sql.service import SqlService
from daz.store.postgres import PostgresStore
from daz.testing.settle import queue_settled

INSERT = "INSERT INTO outage_rows (k) VALUES ($1)"
SETTLE_TIMEOUT_SECONDS = 120.0


def build_config(dsn: str, spool: Path) -> DazConfig:
    return DazConfig.model_validate({
        "database": {"url": dsn, "connect_timeout_seconds": 1, "require_database": True,
                     "pool": {"min_size": 1, "max_size": 4, "acquire_timeout_seconds": 2,
                              "resize_interval_seconds": 1}},
        "retry": {"poll_interval_seconds": 0.5, "worker_count": 2, "lease_seconds": 5,
                  "heartbeat_interval_seconds": 1, "stats_interval_seconds": 1,
                  "retry_policies": {"sql_operation": {
                      "max_retries": 200, "initial_delay_seconds": 0.5, "max_delay_seconds": 2,
                      "backoff_multiplier": 1.5, "breaker": "database"}}},
        "breakers": {"default": {}, "database": {"window_size": 10, "minimum_calls": 5,
                                                 "break_seconds": 1, "max_break_seconds": 3}},
        "spool": {"path": str(spool), "drain_interval_seconds": 0.5},
    })


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def write(plugin: SqlService, count: int, rate: float) -> dict[str, int]:
    outcome = {"applied": 0, "queued": 0, "lost": 0}
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await plugin.exec(INSERT, f"k{i}", idempotency_key=f"k{i}", source="outage-writer")
            outcome["applied"] += 1
        except SqlRetryScheduled:
            outcome["queued"] += 1
        except Exception as exc:  # anything else would be a lost exec: report it, the test fails
            outcome["lost"] += 1
            say(f"lost {i} {type(exc).__name__}: {exc}")
            continue
        say(f"ack {i}")
    return outcome


async def main(args: argparse.Namespace) -> None:
    config = build_config(args.dsn, Path(args.spool))
    clock, rng, metrics = SystemClock(), random.Random(), DazMetrics()
    async with EventBus(metrics=metrics) as bus:
        breakers = BreakerRegistry(config, bus, metrics, clock, rng)
        store = await PostgresStore.connect(args.dsn, clock=clock, min_size=1, max_size=4)
        spool = Spool(config.spool.path, max_items=config.spool.max_items, metrics=metrics)
        queue = RetryQueue(store, config.retry, bus, metrics, clock, rng, None, on_store_unavailable=spool)
        drainer = SpoolDrainer(spool, store, clock=clock, metrics=metrics, on_drained=queue.wake,
                               interval_seconds=config.spool.drain_interval_seconds)
        plugin = SqlService(args.dsn, bus, metrics, clock, breakers, queue, config.database, rng=rng)
        await plugin.start()
        stopping = asyncio.Event()
        result: dict[str, Any] = {}
        async with asyncio.TaskGroup() as tg:
            tg.create_task(queue.run(stopping), name="writer.retry")
            tg.create_task(drainer.run(stopping), name="writer.spool")
            tg.create_task(plugin.run(stopping), name="writer.sql")
            if args.mode == "write":
                result.update(await write(plugin, args.count, args.rate))
                say("written")
            deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
            while time.monotonic() < deadline and not await queue_settled(store, spool):
                await asyncio.sleep(0.25)
            result["settled"] = await queue_settled(store, spool)
            result["spool_items"] = await spool.count()
            breaker = breakers.get("database").snapshot()
            result["breaker_opened"] = breaker["opened_total"]
            result["breaker_rejections"] = breaker["rejections_total"]
            result["spool_drained"] = int(metrics.registry.get_sample_value("daz_spool_drained_total") or 0)
            stopping.set()
        await plugin.close()
        await store.close()
        await spool.close()
    say("done " + json.dumps(result))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["write", "recover"])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    asyncio.run(main(parser.parse_args()))
