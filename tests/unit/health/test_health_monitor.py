"""The monitor on FakeClock: timeouts, crashes, overall status, change events, recovery limits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from daz.config import HealthConfig
from daz.events.bus import EventBus
from daz.health.monitor import HEALTH_CHANGED, HEALTH_RECOVERY, HealthMonitor
from daz.health.types import CheckResult, HealthStatus
from daz.metrics import DazMetrics
from daz.testing import FakeClock

P, W, F = HealthStatus.PASS, HealthStatus.WARN, HealthStatus.FAIL


@dataclass
class StubCheck:
    name: str
    critical: bool
    clock: FakeClock
    status: HealthStatus = HealthStatus.PASS
    recovery: str | None = None
    recovered: list[tuple[str, str, str]] = field(default_factory=list)

    async def run(self) -> list[CheckResult]:
        return [CheckResult(self.name, "m", self.status, 1, None, "" if self.status is P else "bad",
                            self.clock.now(), self.recovery)]

    async def recover(self, component: str, action: str, reason: str) -> None:
        self.recovered.append((component, action, reason))


@dataclass
class HungCheck:
    name: str = "hung"
    critical: bool = True

    async def run(self) -> list[CheckResult]:
        await asyncio.Event().wait()  # never returns
        return []


@dataclass
class CrashingCheck:
    name: str = "crashy"
    critical: bool = True

    async def run(self) -> list[CheckResult]:
        raise RuntimeError("boom")


def status_gauge(metrics: DazMetrics, component: str) -> float | None:
    return metrics.registry.get_sample_value("daz_health_check_status", {"component": component})


async def test_hung_check_fails_after_its_timeout_and_others_still_report() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    ok = StubCheck("database", True, clock)
    monitor = HealthMonitor([HungCheck(), ok], None, metrics, clock, HealthConfig(check_timeout_seconds=2))
    async with asyncio.TaskGroup() as tg:
        tick = tg.create_task(monitor.run_once())
        await clock.advance(1.9)
        assert not tick.done()
        await clock.advance(0.2)
    report = tick.result()
    hung = report.components["hung"]
    assert hung.status is F
    assert "timed out after 2s" in hung.results[0].output
    assert report.components["database"].status is P
    assert report.status is F
    assert status_gauge(metrics, "hung") == 2
    assert status_gauge(metrics, "database") == 0


async def test_crashing_check_is_a_failing_check() -> None:
    clock = FakeClock()
    monitor = HealthMonitor([CrashingCheck()], None, DazMetrics(), clock, HealthConfig())
    report = await monitor.run_once()
    assert report.components["crashy"].status is F
    assert "RuntimeError: boom" in report.components["crashy"].output


async def test_overall_is_worst_of_critical_components_only() -> None:
    clock = FakeClock()
    critical = StubCheck("database", True, clock)
    optional = StubCheck("external:cytube", False, clock, status=F)
    metrics = DazMetrics()
    monitor = HealthMonitor([critical, optional], None, metrics, clock, HealthConfig())
    assert (await monitor.run_once()).status is P
    critical.status = W
    assert (await monitor.run_once()).status is W
    critical.status = F
    report = await monitor.run_once()
    assert report.status is F
    assert [c.component for c in report.failing()] == ["database"]
    assert status_gauge(metrics, "overall") == 2
    assert [s for _, s in monitor.history()] == [P, W, F]
    assert [s for _, s in monitor.history("external:cytube")] == [F, F, F]


async def test_health_changed_published_on_change_only() -> None:
    clock = FakeClock()
    check = StubCheck("database", True, clock)
    async with EventBus(clock=clock) as bus, bus.recording(HEALTH_CHANGED) as seen:
        monitor = HealthMonitor([check], bus, DazMetrics(), clock, HealthConfig())
        await monitor.run_once()
        await monitor.run_once()
        check.status = F
        await monitor.run_once()
        await monitor.run_once()
        check.status = P
        await monitor.run_once()
        await bus.drain()
    changes = [(e.data["component"], e.data["from"], e.data["to"]) for e in seen]
    assert changes == [
        ("database", None, "pass"), ("overall", None, "pass"),
        ("database", "pass", "fail"), ("overall", "pass", "fail"),
        ("database", "fail", "pass"), ("overall", "fail", "pass"),
    ]
    failing = next(e for e in seen if e.data["to"] == "fail" and e.data["component"] == "database")
    assert "m: bad" in failing.data["output"]


async def test_component_since_tracks_the_last_change() -> None:
    clock = FakeClock()
    check = StubCheck("database", True, clock)
    monitor = HealthMonitor([check], None, DazMetrics(), clock, HealthConfig())
    first = (await monitor.run_once()).components["database"].since
    await clock.advance(5)
    assert (await monitor.run_once()).components["database"].since == first
    check.status = F
    assert (await monitor.run_once()).components["database"].since == clock.now()


async def test_recovery_is_rate_limited_per_component_and_counted() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    check = StubCheck("room:lobby", True, clock, status=F, recovery="room_reconnect")
    config = HealthConfig(recovery_min_interval_seconds=30)
    async with EventBus(clock=clock) as bus, bus.recording(HEALTH_RECOVERY) as seen:
        monitor = HealthMonitor([check], bus, metrics, clock, config)
        await monitor.run_once()
        for _ in range(5):
            await clock.advance(5)
            await monitor.run_once()
        assert len(check.recovered) == 1
        await clock.advance(5)  # 30 s after the first action
        await monitor.run_once()
        await bus.drain()
    assert len(check.recovered) == 2
    assert check.recovered[0] == ("room:lobby", "room_reconnect", "m: bad")
    assert metrics.registry.get_sample_value("daz_recovery_actions_total", {"action": "room_reconnect"}) == 2
    assert [e.data["measurement"] for e in seen] == ["m", "m"]


async def test_run_loop_ticks_on_the_interval_and_stops() -> None:
    clock = FakeClock()
    check = StubCheck("database", True, clock)
    monitor = HealthMonitor([check], None, DazMetrics(), clock, HealthConfig(interval_seconds=5))
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(monitor.run(stopping))
        await clock.advance(0)
        assert monitor.ticks == 1
        await clock.advance(4.9)
        assert monitor.ticks == 1
        for expected in (2, 3):
            await clock.advance(0.1)
            await clock.advance(0)  # let the tick's task group finish and the next sleep start
            assert monitor.ticks == expected
            await clock.advance(4.9)
        stopping.set()
    assert monitor.ticks == 3


async def test_vanished_component_is_dropped_from_metrics() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    check = StubCheck("room:gone", True, clock)
    monitor = HealthMonitor([check], None, metrics, clock, HealthConfig())
    await monitor.run_once()
    assert status_gauge(metrics, "room:gone") == 0
    check.name = "room:other"
    await monitor.run_once()
    assert status_gauge(metrics, "room:gone") is None
    assert monitor.history("room:gone") == []


@pytest.mark.parametrize("critical", [True, False])
async def test_failing_component_criticality(critical: bool) -> None:
    clock = FakeClock()
    monitor = HealthMonitor([StubCheck("x", critical, clock, status=F)], None, DazMetrics(), clock,
                            HealthConfig())
    assert (await monitor.run_once()).status is (F if critical else P)
