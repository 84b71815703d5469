"""Overhead of a call through a CircuitBreaker, and of the retry budget's try_acquire.

Usage: .venv-dev/bin/python bench/breaker.py [--calls N]
Prints per-call costs; never asserts (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from daz.clock import SystemClock
from daz.config import BreakerConfig, RetryBudgetConfig
from daz.metrics import DazMetrics
from daz.resilience.breaker import CircuitBreaker
from daz.retry.budget import RetryBudget


async def noop() -> None:
    return None


async def bench(calls: int) -> None:
    clock = SystemClock()
    for window in ("count", "time"):
        breaker = CircuitBreaker("bench", BreakerConfig(window_type=window), clock=clock,
                                 rng=random.Random(1), metrics=DazMetrics())
        start = time.perf_counter()
        for _ in range(calls):
            await breaker.call(noop)
        through = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        for _ in range(calls):
            await noop()
        bare = (time.perf_counter() - start) / calls
        print(f"breaker.call ({window} window, with metrics): {through * 1e6:.2f} µs/call; "
              f"bare await {bare * 1e6:.2f} µs; overhead {(through - bare) * 1e6:.2f} µs")
    budget = RetryBudget(RetryBudgetConfig(), clock, DazMetrics())
    start = time.perf_counter()
    for _ in range(calls):
        budget.record_base("db")
        budget.try_acquire("db")
    print(f"budget record_base+try_acquire: {(time.perf_counter() - start) / calls * 1e6:.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    asyncio.run(bench(parser.parse_args().calls))


if __name__ == "__main__":
    main()
