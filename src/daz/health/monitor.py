"""The health monitor: runs every check on an interval, remembers, reports changes, recovers.

Each tick runs all checks concurrently, each raced against its own timeout on the injected clock:
a hung or crashing check becomes a failing ``<check>:check`` result, never a hung monitor. The
component status is the worst of its measurements; the overall status is the worst of the
critical components. A status change publishes ``health.changed`` and a log line; every tick sets
``daz_health_check_status{component}``. Results asking for recovery run the check's ``recover``
at most once per ``recovery_min_interval_seconds`` per component.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog

from daz.aio import race, sleep_or_stop, wait_for
from daz.clock import Clock
from daz.config import HealthConfig
from daz.events.bus import EventBus
from daz.health.process import LoopLagProbe
from daz.health.types import Check, CheckResult, HealthStatus, Recoverable, worst
from daz.metrics import HEALTH_STATUS_CODES, DazMetrics

log = structlog.get_logger("daz.health")

HEALTH_CHANGED = "health.changed"
HEALTH_RECOVERY = "health.recovery"
OVERALL = "overall"


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    component: str
    status: HealthStatus
    critical: bool
    results: tuple[CheckResult, ...]
    since: datetime  # when the status last changed

    @property
    def output(self) -> str:
        failing = (r for r in self.results if r.status is not HealthStatus.PASS)
        return "; ".join(f"{r.measurement}: {r.output}" for r in failing)


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: HealthStatus
    time: datetime
    components: Mapping[str, ComponentHealth]

    def failing(self, *, critical_only: bool = True) -> list[ComponentHealth]:
        return [c for c in self.components.values()
                if c.status is HealthStatus.FAIL and (c.critical or not critical_only)]


def overall_status(components: Iterable[ComponentHealth]) -> HealthStatus:
    """Worst of the critical components; non-critical ones are reported but never gate."""
    return worst(c.status for c in components if c.critical)


class HealthMonitor:
    """A ``Service``: ``await monitor.run(stopping)``; ``run_once()`` for one tick (tests, CLI)."""

    name = "health.monitor"

    def __init__(
        self,
        checks: Iterable[Check],
        bus: EventBus | None,
        metrics: DazMetrics,
        clock: Clock,
        config: HealthConfig,
        *,
        lag_probe: LoopLagProbe | None = None,
    ) -> None:
        self._checks = list(checks)
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self.config = config
        # The lag probe always runs with the monitor, so daz_event_loop_lag_seconds is always live.
        self.lag_probe: LoopLagProbe = lag_probe if lag_probe is not None else LoopLagProbe(
            clock, config.loop_lag_interval_seconds, metrics)
        self._latest: HealthReport | None = None
        self._history: dict[str, collections.deque[tuple[datetime, HealthStatus]]] = {}
        self._last_recovery: dict[str, float] = {}
        self.ticks = 0

    def add(self, check: Check) -> None:
        self._checks.append(check)

    @property
    def checks(self) -> list[Check]:
        return list(self._checks)

    def latest(self) -> HealthReport | None:
        """The last tick's report; None before the first tick finished."""
        return self._latest

    def history(self, component: str = OVERALL) -> list[tuple[datetime, HealthStatus]]:
        return list(self._history.get(component, ()))

    # the loop ------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.lag_probe.run(stopping), name="health.loop_lag")
            while not stopping.is_set():
                if await self._tick_or_stop(stopping):
                    break
                if await sleep_or_stop(self._clock, self.config.interval_seconds, stopping):
                    break

    async def _tick_or_stop(self, stopping: asyncio.Event) -> bool:
        """One tick, abandoned (cancelled) when ``stopping`` is set first; True when stopping."""
        await race({"run": self.run_once, "stop": stopping.wait}, label="health.tick")
        return stopping.is_set()

    async def run_once(self) -> HealthReport:
        checks = list(self._checks)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._run_check(c), name=f"health.check.{c.name}") for c in checks]
        outcomes = [t.result() for t in tasks]
        report = self._assemble(checks, outcomes)
        self._record(report)
        await self._recover(checks, outcomes)
        self.ticks += 1
        return report

    # one check under its own timeout ----------------------------------------------------------
    async def _run_check(self, check: Check) -> list[CheckResult]:
        outcome: list[CheckResult] | None = None

        async def attempt() -> None:
            nonlocal outcome
            try:
                outcome = list(await check.run())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broken check is a failing check
                log.warning("health.check_crashed", check=check.name, error=repr(exc))
                outcome = [self._failure(check, f"check crashed: {type(exc).__name__}: {exc}")]

        timeout = self.config.check_timeout_seconds
        with contextlib.suppress(TimeoutError):  # attempt() turns the check's own errors into outcomes
            await wait_for(self._clock, timeout, attempt, label=f"health.check.{check.name}")
        if outcome is None:
            log.warning("health.check_timed_out", check=check.name, timeout_seconds=timeout)
            return [self._failure(check, f"check timed out after {timeout:g}s")]
        return outcome

    def _failure(self, check: Check, output: str) -> CheckResult:
        return CheckResult(check.name, "check", HealthStatus.FAIL, None, None, output, self._clock.now())

    # assembling and recording -----------------------------------------------------------------
    def _assemble(self, checks: list[Check], outcomes: list[list[CheckResult]]) -> HealthReport:
        now = self._clock.now()
        grouped: dict[str, list[CheckResult]] = {}
        critical: dict[str, bool] = {}
        for check, results in zip(checks, outcomes, strict=True):
            for result in results:
                grouped.setdefault(result.component, []).append(result)
                critical[result.component] = critical.get(result.component, False) or check.critical
        previous = self._latest.components if self._latest is not None else {}
        components: dict[str, ComponentHealth] = {}
        for name, results in grouped.items():
            status = worst(r.status for r in results)
            before = previous.get(name)
            since = before.since if before is not None and before.status is status else now
            components[name] = ComponentHealth(name, status, critical[name], tuple(results), since)
        return HealthReport(overall_status(components.values()), now, components)

    def _record(self, report: HealthReport) -> None:
        before = self._latest
        self._latest = report
        size = self.config.history_size
        for name, comp in report.components.items():
            self._history.setdefault(name, collections.deque(maxlen=size)).append((report.time, comp.status))
            self._metrics.health_check_status.labels(component=name).set(HEALTH_STATUS_CODES[comp.status])
            old = before.components.get(name) if before is not None else None
            if old is None or old.status is not comp.status:
                self._changed(name, old.status if old else None, comp.status, comp.critical, comp.output)
        self._history.setdefault(OVERALL, collections.deque(maxlen=size)).append((report.time, report.status))
        self._metrics.health_check_status.labels(component=OVERALL).set(HEALTH_STATUS_CODES[report.status])
        if before is None or before.status is not report.status:
            failing = ", ".join(c.component for c in report.failing()) or ""
            self._changed(OVERALL, before.status if before else None, report.status, True, failing)
        if before is not None:
            for gone in set(before.components) - set(report.components):
                self._metrics.health_check_status.remove(gone)
                self._history.pop(gone, None)

    def _changed(
        self, component: str, previous: HealthStatus | None, status: HealthStatus, critical: bool, output: str
    ) -> None:
        fields = {"component": component, "from": previous.value if previous else None,
                  "to": status.value, "critical": critical, "output": output}
        level = log.info if status is HealthStatus.PASS else log.warning
        level("health.changed", component=component, previous=fields["from"], status=status.value,
              critical=critical, output=output)
        if self._bus is not None:
            self._bus.publish(HEALTH_CHANGED, fields, source="health")

    # recovery ---------------------------------------------------------------------------------
    async def _recover(self, checks: list[Check], outcomes: list[list[CheckResult]]) -> None:
        asked: dict[str, tuple[Check, CheckResult]] = {}
        for check, results in zip(checks, outcomes, strict=True):
            for result in results:
                if result.recovery and result.component not in asked:
                    asked[result.component] = (check, result)
        for component, (check, result) in asked.items():
            if not isinstance(check, Recoverable) or result.recovery is None:
                continue
            now = self._clock.monotonic()
            last = self._last_recovery.get(component)
            if last is not None and now - last < self.config.recovery_min_interval_seconds:
                log.debug("health.recovery_suppressed", component=component, action=result.recovery,
                          seconds_since_last=round(now - last, 1))
                continue
            self._last_recovery[component] = now
            log.warning("health.recovery", component=component, action=result.recovery,
                        check=f"{component}:{result.measurement}", output=result.output)
            self._metrics.recovery_actions.labels(action=result.recovery).inc()
            if self._bus is not None:
                self._bus.publish(HEALTH_RECOVERY, {
                    "component": component, "action": result.recovery,
                    "measurement": result.measurement, "output": result.output}, source="health")
            try:
                async with asyncio.timeout(self.config.check_timeout_seconds):
                    await check.recover(component, result.recovery, f"{result.measurement}: {result.output}")
            except Exception as exc:  # a failed recovery is logged; a later tick retries
                log.exception("health.recovery_failed", component=component, action=result.recovery,
                          error=repr(exc))
