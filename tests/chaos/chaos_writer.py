"""The process under test in scenarios 3 and 4: daz's SQL service, retry queue, gate and spool.

``python chaos_writer.py --dsn DSN --spool PATH --start S --count N --rate R`` issues idempotent
execs ``k<S>`` .. ``k<N-1>`` (one chat-log-like row each, key ``k<i>``) at ``R`` per second and
prints ``ack <i>`` once each returned (applied, or durably queued/spooled). Then it keeps the queue
and the spool drainer running until the spool is empty and no ``sql_operation`` is pending or
processing, and prints ``done <json>`` with its figures. Every second it prints ``stats <json>``.

The test kills it with SIGKILL at random moments and starts it again with ``--start`` at the
first unacknowledged index: what was acknowledged must survive, what was in flight may be issued
twice and must still apply once (idempotency key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from daz.clock import SystemClock
from daz.config import DazConfig
from daz.errors import SqlRetryScheduled
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.resilience.gate import BreakerGate
from daz.resilience.registry import BreakerRegistry
from daz.retry.budget import RetryBudget
from daz.retry.queue import RetryQueue
from daz.retry.spool import Spool, SpoolDrainer
from daz.sql.service import SqlService
from daz.store.postgres import PostgresStore
from daz.testing.settle import queue_settled

INSERT = "INSERT INTO chaos_rows (k) VALUES ($1)"
SETTLE_TIMEOUT_SECONDS = 600.0
STATS_INTERVAL_SECONDS = 1.0


def build_config(dsn: str, spool: Path, *, budget: bool, floor: float | None) -> DazConfig:
    # The product's retry budget (ratio 0.2, floor 1/s, 10 s window) unless a floor is given to diagnose.
    retry_budget: dict[str, Any] = {"enabled": budget}
    if floor is not None:
        retry_budget["min_per_second"] = floor
    return DazConfig.model_validate({
        "database": {"url": dsn, "connect_timeout_seconds": 1, "require_database": True,
                     "pool": {"min_size": 1, "max_size": 8, "acquire_timeout_seconds": 2,
                              "resize_interval_seconds": 1}},
        "retry": {"poll_interval_seconds": 0.5, "worker_count": 3, "lease_seconds": 3, "batch_size": 200,
                  "heartbeat_interval_seconds": 1, "stats_interval_seconds": 1,
                  "breaker_release_per_second": 500,
                  "retry_policies": {"sql_operation": {
                      "max_retries": 500, "initial_delay_seconds": 0.5, "max_delay_seconds": 2,
                      "backoff_multiplier": 1.5, "breaker": "database"}}},
        "breakers": {"default": {}, "database": {"window_size": 20, "minimum_calls": 10,
                                                 "break_seconds": 1, "max_break_seconds": 3}},
        "retry_budget": retry_budget,
        "spool": {"path": str(spool), "drain_interval_seconds": 0.5},
    })


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Figures:
    def __init__(self, metrics: DazMetrics, budget: RetryBudget, spool: Spool) -> None:
        self.metrics = metrics
        self.budget = budget
        self.spool = spool
        self.spool_peak = 0
        self.budget_max_use = 0.0  # max over samples of retries / allowance in the window
        self.budget_violations = 0

    def sample_value(self, name: str, labels: dict[str, str] | None = None) -> int:
        return int(self.metrics.registry.get_sample_value(name, labels or {}) or 0)

    async def sample(self) -> dict[str, Any]:
        depth = await self.spool.count()
        self.spool_peak = max(self.spool_peak, depth)
        for row in self.budget.snapshot():
            allowance = float(row["allowance"])
            use = float(row["retries"]) / allowance if allowance else 0.0
            self.budget_max_use = max(self.budget_max_use, use)
            if use > 1.0:
                self.budget_violations += 1
        return {"spool": depth, "spool_peak": self.spool_peak,
                "breaker_opened": self.transitions("open"), "breaker_closed": self.transitions("closed")}

    def transitions(self, to: str) -> int:
        return self.sample_value("daz_breaker_transitions_total", {"name": "database", "to": to})


async def write(plugin: SqlService, start: int, count: int, rate: float) -> dict[str, int]:
    outcome = {"applied": 0, "queued": 0, "lost": 0}
    began = time.monotonic()
    for n, i in enumerate(range(start, count)):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await plugin.exec(INSERT, f"k{i}", idempotency_key=f"k{i}", source="chaos-writer")
            outcome["applied"] += 1
        except SqlRetryScheduled:
            outcome["queued"] += 1
        except Exception as exc:  # anything else is a lost write: report it, the test fails
            outcome["lost"] += 1
            # Where it escaped from: the innermost daz frames (the bug to fix is usually there).
            frames = [f"{Path(f.filename).name}:{f.lineno}:{f.name}"
                      for f in traceback.extract_tb(exc.__traceback__) if "/daz/" in f.filename][-4:]
            where = " < ".join(reversed(frames))
            say(f"lost {i} {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:200]} at {where}")
            continue
        say(f"ack {i}")
    return outcome


async def report(figures: Figures, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        say("stats " + json.dumps(await figures.sample()))
        try:
            async with asyncio.timeout(STATS_INTERVAL_SECONDS):
                await stopping.wait()
        except TimeoutError:
            continue


async def main(args: argparse.Namespace) -> None:
    config = build_config(args.dsn, Path(args.spool), budget=not args.no_budget, floor=args.budget_floor)
    clock, rng, metrics = SystemClock(), random.Random(), DazMetrics()
    async with EventBus(metrics=metrics) as bus:
        breakers = BreakerRegistry(config, bus, metrics, clock, rng)
        store = await PostgresStore.connect(args.dsn, clock=clock, min_size=1, max_size=4)
        spool = Spool(config.spool.path, max_items=config.spool.max_items, metrics=metrics)
        budget = RetryBudget(config.retry_budget, clock, metrics)
        gate = BreakerGate(breakers, clock=clock, budget=budget, store=store,
                           release_per_second=config.retry.breaker_release_per_second, metrics=metrics)
        # --no-spool is the switch that shows scenario 3 failing when its mechanism is gone.
        queue = RetryQueue(store, config.retry, bus, metrics, clock, rng, gate,
                           on_store_unavailable=None if args.no_spool else spool)
        drainer = SpoolDrainer(spool, store, clock=clock,
                               interval_seconds=config.spool.drain_interval_seconds,
                               metrics=metrics, on_drained=queue.wake)
        plugin = SqlService(args.dsn, bus, metrics, clock, breakers, queue, config.database, rng=rng)
        await plugin.start()
        figures = Figures(metrics, budget, spool)
        say("started")
        stopping = asyncio.Event()
        stats_stop = asyncio.Event()
        result: dict[str, Any] = {}
        async with asyncio.TaskGroup() as tg:
            tg.create_task(queue.run(stopping), name="writer.retry")
            tg.create_task(drainer.run(stopping), name="writer.spool")
            tg.create_task(plugin.run(stopping), name="writer.sql")
            tg.create_task(gate.run(stopping), name="writer.gate")
            tg.create_task(report(figures, stats_stop), name="writer.stats")
            result.update(await write(plugin, args.start, args.count, args.rate))
            say("written")
            deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
            while time.monotonic() < deadline and not await queue_settled(store, spool):
                await asyncio.sleep(0.25)
            result["settled"] = await queue_settled(store, spool)
            result.update(await figures.sample())
            result["spool_drained"] = figures.sample_value("daz_spool_drained_total")
            result["budget_max_use"] = round(figures.budget_max_use, 3)
            result["budget_violations"] = figures.budget_violations
            result["budget"] = budget.snapshot()
            stats_stop.set()
            stopping.set()
        await plugin.close()
        await store.close()
        await spool.close()
    say("done " + json.dumps(result, default=str))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--no-budget", action="store_true")
    parser.add_argument("--no-spool", action="store_true")
    parser.add_argument("--budget-floor", type=float, default=None,
                        help="retry_budget.min_per_second (default: the product default)")
    asyncio.run(main(parser.parse_args()))
