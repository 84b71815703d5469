"""daz retry-queue benchmark, in the peers' format (see ../shared/bench-anchors/README.md).

    python bench/queue.py [N=20000] [WORKERS=4] [--batch-size 200] [--backend postgres|sqlite]

1. enqueue: N no-op items through one ``store.schedule`` call (one INSERT … SELECT FROM unnest);
2. drain: a ``RetryQueue`` with WORKERS claim loops; the clock runs from start until the queue has
   stopped with every completion committed (checked afterwards through ``stats()``);
3. idle latency: median of single-item schedules to handler start, with an idle gap between
   samples, two ways, alternating: ``idle_latency_ms_*`` through ``RetryQueue.schedule`` in the
   process running the workers (due now, so the local hand-off applies: the row is inserted already
   claimed and handed to an idle worker), and ``idle_latency_remote_ms_*`` from a separate store
   connection (a producer in another process: the wake-up goes through LISTEN/NOTIFY and a claim).

Prints ``RESULT system=daz test=<backend> n=… enqueue_s=… drain_jobs_per_s=… idle_latency_ms_p50=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from daz.config import RetryConfig, RetryPolicyConfig
from daz.retry import RetryQueue
from daz.store import NewItem, QueueItem, RetryStore, open_store

now = time.perf_counter


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def result_line(**fields: Any) -> str:
    shown = (f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
    return "RESULT " + " ".join(shown)


def fresh_sqlite_path(directory: str | None) -> Path:
    """A SQLite file with no leftovers from an earlier run (its WAL and shared-memory files too)."""
    path = Path(directory or tempfile.mkdtemp(prefix="daz-bench-")) / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


async def fresh_store(args: argparse.Namespace) -> tuple[RetryStore, str]:
    if args.backend == "postgres":
        store = await open_store(args.dsn, pool_min_size=args.workers + 2, pool_max_size=args.workers + 4)
        pool = store._db  # type: ignore[attr-defined]  # bench-only: reset the table between runs
        await pool.execute("TRUNCATE daz_retry_queue RESTART IDENTITY")
        await pool.execute("CHECKPOINT")  # same start state for every run, as the peers do
        return store, args.dsn
    url = f"sqlite:///{fresh_sqlite_path(args.sqlite_path)}"
    return await open_store(url), url


def queue_config(args: argparse.Namespace, poll: float) -> RetryConfig:
    return RetryConfig(
        worker_count=args.workers, batch_size=args.batch_size, poll_interval_seconds=poll,
        default_policy=RetryPolicyConfig(max_retries=3, timeout_seconds=30, jitter=0),
        retry_policies={},
    )


async def drain(store: RetryStore, args: argparse.Namespace) -> tuple[float, int]:
    n = args.n
    calls = 0
    done = asyncio.Event()
    stopping = asyncio.Event()

    async def noop(item: QueueItem) -> None:
        nonlocal calls
        calls += 1
        if calls >= n:
            done.set()
            stopping.set()  # workers persist the batch in hand, then return

    queue = RetryQueue(store, queue_config(args, poll=1.0))
    queue.register("noop", noop)
    t0 = now()
    await queue.run(stopping)
    elapsed = now() - t0
    completed = sum(r.count for r in await store.stats() if r.status == "completed")
    assert completed == n, (completed, n, await store.stats())
    return elapsed, calls


async def idle_latency(
    store: RetryStore, url: str, args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    producer = await open_store(url, apply_migrations=False, pool_min_size=1, pool_max_size=1)
    started: dict[int, float] = {}
    arrived = asyncio.Event()

    async def probe(item: QueueItem) -> None:
        started[int(item.payload["i"])] = now()
        arrived.set()

    queue = RetryQueue(store, queue_config(args, poll=10.0))
    queue.register("probe", probe)
    stopping = asyncio.Event()
    local: list[float] = []
    remote: list[float] = []
    async with asyncio.TaskGroup() as group:
        group.create_task(queue.run(stopping), name="bench.queue")
        await asyncio.sleep(1.0)
        for i in range(2 * args.latency_samples):
            await asyncio.sleep(args.latency_gap_ms / 1000)
            arrived.clear()
            t = now()
            if i % 2 == 0:
                await queue.schedule(NewItem("probe", {"i": i}, retry_after=datetime.now(UTC)))
            else:
                await producer.schedule([NewItem("probe", {"i": i})])
            await asyncio.wait_for(arrived.wait(), 30)
            (local if i % 2 == 0 else remote).append(started[i] - t)
        stopping.set()
    handed_off = queue.stats.get("handed_off", 0)
    assert handed_off == len(local), ("local samples not all handed off", handed_off, len(local))
    await producer.close()
    return local, remote


async def main(args: argparse.Namespace) -> None:
    store, url = await fresh_store(args)
    items = [NewItem("noop", {"i": i}, max_retries=3, timeout_seconds=30) for i in range(args.n)]
    t0 = now()
    await store.schedule(items)
    enqueue_s = now() - t0
    drain_s, calls = await drain(store, args)
    lat, remote = ([], []) if args.skip_latency else await idle_latency(store, url, args)
    await store.close()
    fields: dict[str, Any] = {
        "system": "daz", "test": args.backend, "n": args.n, "concurrency": args.workers,
        "batch_size": args.batch_size, "loop": "asyncio", "enqueue_s": enqueue_s,
        "enqueue_jobs_per_s": args.n / enqueue_s, "drain_s": drain_s, "drain_jobs_per_s": args.n / drain_s,
        "handler_calls": calls,
    }
    if lat:
        ms = [x * 1000 for x in lat]
        fields |= {"idle_latency_ms_p50": statistics.median(ms), "idle_latency_ms_p90": pct(ms, 0.9),
                   "idle_latency_ms_min": min(ms), "idle_latency_ms_max": max(ms)}
    if remote:
        ms = [x * 1000 for x in remote]
        fields |= {"idle_latency_remote_ms_p50": statistics.median(ms),
                   "idle_latency_remote_ms_p90": pct(ms, 0.9)}
    print(result_line(**fields), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="daz retry queue benchmark")
    p.add_argument("n", nargs="?", type=int, default=20_000)
    p.add_argument("workers", nargs="?", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--dsn", default="postgresql://root@127.0.0.1:5432/bench_daz")
    p.add_argument("--sqlite-path", default=None, help="directory for the SQLite file (default: a temp dir)")
    p.add_argument("--latency-samples", type=int, default=50)
    p.add_argument("--latency-gap-ms", type=float, default=200.0)
    p.add_argument("--skip-latency", action="store_true")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(main(p.parse_args()))
