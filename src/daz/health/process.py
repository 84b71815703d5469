"""The process itself: memory, CPU, open file descriptors, and event-loop lag.

Event-loop lag is the delay between when a sleep was due to end and when the loop actually ran
the sleeper again: ``woke - (started + requested)``. A blocked loop shows up here first.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from daz.aio import sleep_or_stop
from daz.clock import Clock
from daz.config import HealthThresholds
from daz.health import verdicts
from daz.health.checks import ResultBuilder, describe_error
from daz.health.types import CheckResult, HealthStatus
from daz.metrics import DazMetrics

_LAG_WINDOW_SAMPLES = 10
_MB = 1024 * 1024


def wake_delay(started: float, requested: float, woke: float) -> float:
    """How late a sleep of ``requested`` seconds begun at ``started`` ended (never negative)."""
    return max(0.0, woke - started - requested)


class LoopLagProbe:
    """Sleeps ``interval`` seconds over and over and records how late each wake-up was.

    ``lag`` is the worst of the last few samples, so one check interval never hides a stall.
    Sets ``daz_event_loop_lag_seconds`` on every sample.
    """

    name = "health.loop_lag"

    def __init__(self, clock: Clock, interval: float, metrics: DazMetrics | None = None) -> None:
        self._clock = clock
        self.interval = interval
        self._metrics = metrics
        self._samples: collections.deque[float] = collections.deque(maxlen=_LAG_WINDOW_SAMPLES)

    def observe(self, lag: float) -> None:
        self._samples.append(lag)
        if self._metrics is not None:
            self._metrics.event_loop_lag.set(lag)

    @property
    def lag(self) -> float | None:
        return max(self._samples) if self._samples else None

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            started = self._clock.monotonic()
            if await sleep_or_stop(self._clock, self.interval, stopping):
                return
            self.observe(wake_delay(started, self.interval, self._clock.monotonic()))


@dataclass(frozen=True, slots=True)
class ProcessSample:
    rss_bytes: int
    cpu_percent: float
    open_fds: int | None


def psutil_sampler() -> Callable[[], ProcessSample]:
    """Samples this process. CPU is the share since the previous call (the first reads 0)."""
    proc = psutil.Process()
    proc.cpu_percent(None)

    def sample() -> ProcessSample:
        with proc.oneshot():
            fds = proc.num_fds() if hasattr(proc, "num_fds") else None
            return ProcessSample(proc.memory_info().rss, proc.cpu_percent(None), fds)

    return sample


class ProcessCheck:
    """Component ``process``: ``memory`` (RSS, MB), ``cpu`` (percent of one core), ``loop_lag`` (ms),
    ``open_fds``. Not critical by default (reported and alerted on, but it does not gate
    readiness); the thresholds are in ``health.thresholds``."""

    name = "process"

    def __init__(
        self,
        clock: Clock,
        thresholds: HealthThresholds,
        lag: LoopLagProbe | None,
        *,
        sampler: Callable[[], ProcessSample] | None = None,
        critical: bool = False,
    ) -> None:
        self._clock = clock
        self._t = thresholds
        self._lag = lag
        self._sample = sampler if sampler is not None else psutil_sampler()
        self.critical = critical

    async def run(self) -> list[CheckResult]:
        out = ResultBuilder(self._clock)
        t = self._t
        try:
            sample = self._sample()
        except (psutil.Error, OSError) as exc:
            out.add(self.name, "memory", (HealthStatus.FAIL, describe_error(exc)), None, "MiB")
            return out.items
        rss_mb = sample.rss_bytes / _MB
        out.add(self.name, "memory", verdicts.threshold(
            rss_mb, t.memory_warn_mb, t.memory_fail_mb, "RSS", "MiB"), round(rss_mb, 1), "MiB")
        out.add(self.name, "cpu", verdicts.threshold(
            sample.cpu_percent, t.cpu_warn_percent, t.cpu_fail_percent, "CPU", "%"),
            round(sample.cpu_percent, 1), "percent")
        if self._lag is not None and (lag := self._lag.lag) is not None:
            lag_ms = lag * 1000
            out.add(self.name, "loop_lag", verdicts.threshold(
                lag_ms, t.loop_lag_warn_ms, t.loop_lag_fail_ms, "event-loop lag", "ms"),
                round(lag_ms, 2), "ms")
        if sample.open_fds is not None:
            out.add(self.name, "open_fds", verdicts.threshold(
                sample.open_fds, t.open_fds_warn, t.open_fds_fail, "open file descriptors", ""),
                sample.open_fds, None)
        return out.items
