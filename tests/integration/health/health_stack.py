"""A running health stack (monitor + throughput sampler + HTTP server) for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from daz.clock import Clock, SystemClock
from daz.config import HealthConfig
from daz.events.bus import EventBus
from daz.health.http import HealthServer
from daz.health.monitor import HealthMonitor
from daz.health.process import LoopLagProbe
from daz.health.sources import StatusSources
from daz.health.status import StatusBoard
from daz.health.types import Check
from daz.metrics import DazMetrics


@dataclass
class Stack:
    monitor: HealthMonitor
    board: StatusBoard
    server: HealthServer
    metrics: DazMetrics

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.asynccontextmanager
async def health_stack(
    checks: Iterable[Check],
    *,
    config: HealthConfig | None = None,
    sources: StatusSources | None = None,
    metrics: DazMetrics | None = None,
    bus: EventBus | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[Stack]:
    config = config or HealthConfig(port=0, interval_seconds=0.1, check_timeout_seconds=1.0)
    metrics = metrics or DazMetrics()
    clock = clock or SystemClock()
    probe = LoopLagProbe(clock, config.loop_lag_interval_seconds, metrics)
    monitor = HealthMonitor(checks, bus, metrics, clock, config, lag_probe=probe)
    board = StatusBoard(monitor, sources or StatusSources(), metrics, clock, config)
    if bus is not None:
        board.timeline.attach(bus)
    server = HealthServer(monitor, board, metrics, config)
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(monitor.run(stopping), name="test.monitor")
        tg.create_task(server.run(stopping), name="test.http")
        try:
            async with asyncio.timeout(10):
                await server.started.wait()
            yield Stack(monitor, board, server, metrics)
        finally:
            stopping.set()


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """Poll ``predicate`` (sync or async) until true; bounded in time."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(interval)
