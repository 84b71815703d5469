"""Benchmark: how fast the health server answers /livez, /health and /api/status under concurrency.

    .venv-dev/bin/python bench/health_http.py [--requests 2000] [--concurrency 50]

Runs a monitor with a few cheap checks and the HTTP server on 127.0.0.1, then fires requests with
aiohttp. Prints requests/s and p50/p99 latency per endpoint. A script, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from daz.clock import SystemClock
from daz.config import HealthConfig, HealthThresholds
from daz.health.checks import SpoolCheck
from daz.health.http import HealthServer
from daz.health.monitor import HealthMonitor
from daz.health.process import ProcessCheck
from daz.health.sources import StatusSources
from daz.health.status import StatusBoard
from daz.metrics import DazMetrics


async def hammer(session: aiohttp.ClientSession, url: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
            latencies.append(time.perf_counter() - started)

    async with asyncio.TaskGroup() as tg:
        for i in range(concurrency):
            tg.create_task(worker(), name=f"bench.worker.{i}")
    return latencies


async def main(requests: int, concurrency: int) -> None:
    clock, metrics = SystemClock(), DazMetrics()
    config = HealthConfig(port=0, interval_seconds=1.0)
    thresholds = HealthThresholds()
    checks = [ProcessCheck(clock, thresholds, None), SpoolCheck(lambda: 0, clock, thresholds, 100)]
    monitor = HealthMonitor(checks, None, metrics, clock, config)
    board = StatusBoard(monitor, StatusSources(spool=lambda: 0), metrics, clock, config)
    server = HealthServer(monitor, board, metrics, config)
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(monitor.run(stopping), name="bench.monitor")
        tg.create_task(server.run(stopping), name="bench.http")
        await server.started.wait()
        try:
            async with aiohttp.ClientSession() as session:
                for path in ("/livez", "/health", "/api/status", "/metrics"):
                    started = time.perf_counter()
                    lat = await hammer(session, server.url + path, requests, concurrency)
                    elapsed = time.perf_counter() - started
                    q = statistics.quantiles(lat, n=100)
                    print(f"{path:12} {requests / elapsed:8.0f} req/s   p50 {q[49] * 1000:6.1f} ms"
                          f"   p99 {q[98] * 1000:6.1f} ms   loop lag {monitor.lag_probe.lag or 0:.4f} s")
        finally:
            stopping.set()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency))
