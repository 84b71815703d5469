"""Checks on FakeClock with fake sources: each measurement's pass/warn/fail and the recovery ask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from health_fakes import FakeRoom

from daz.config import HealthThresholds
from daz.health.checks import (
    ROOM_RECONNECT,
    BreakersCheck,
    DatabaseCheck,
    QueueCheck,
    RoomLimits,
    RoomsCheck,
    SpoolCheck,
    describe_error,
)
from daz.health.process import LoopLagProbe, ProcessCheck, ProcessSample, wake_delay
from daz.health.sources import PoolView, QueueView
from daz.health.types import CheckResult, HealthStatus
from daz.metrics import DazMetrics
from daz.testing import FakeClock

P, W, F = HealthStatus.PASS, HealthStatus.WARN, HealthStatus.FAIL
T = HealthThresholds()


def by_measurement(results: list[CheckResult], component: str | None = None) -> dict[str, CheckResult]:
    return {r.measurement: r for r in results if component is None or r.component == component}


def rooms_check(clock: FakeClock, room: FakeRoom, calls: list[tuple[str, str]] | None = None,
                limits: RoomLimits | None = None) -> RoomsCheck:
    def reconnect(name: str, reason: str) -> None:
        if calls is not None:
            calls.append((name, reason))
    return RoomsCheck(lambda: [room], reconnect, clock, limits or RoomLimits())


async def test_ready_room_passes_everything() -> None:
    clock = FakeClock()
    await clock.advance(10)
    room = FakeRoom(last_frame_at=5)
    results = by_measurement(await rooms_check(clock, room).run(), "room:lobby")
    assert {k: v.status for k, v in results.items()} == {"state": P, "flaps": P, "liveness": P, "media": P}
    assert results["liveness"].observed_value == 5.0
    assert results["liveness"].recovery is None


async def test_silent_connection_warns_then_fails_and_asks_for_reconnect() -> None:
    clock = FakeClock()
    room = FakeRoom(last_frame_at=0.0, ping_interval=25, ping_timeout=120)
    check = rooms_check(clock, room, limits=RoomLimits(liveness_margin_seconds=5))
    await clock.advance(30.5)
    live = by_measurement(await check.run())["liveness"]
    assert (live.status, live.recovery) == (W, None)
    await clock.advance(120)
    live = by_measurement(await check.run())["liveness"]
    assert (live.status, live.recovery) == (F, ROOM_RECONNECT)


async def test_media_timeout_never_fires_on_an_idle_channel() -> None:
    clock = FakeClock()
    room = FakeRoom(media_playing=False, last_media_update_at=None)
    check = rooms_check(clock, room, limits=RoomLimits(media_update_timeout_seconds=10))
    for _ in range(50):  # hours of silence from the media side; pings keep arriving
        await clock.advance(600)
        room.last_frame_at = clock.monotonic() - 1
        media = by_measurement(await check.run())["media"]
        assert media.status is P
        assert media.recovery is None
        assert by_measurement(await check.run())["liveness"].recovery is None


async def test_media_timeout_fires_on_a_stalled_playing_channel() -> None:
    clock = FakeClock()
    room = FakeRoom(media_playing=True, last_media_update_at=0.0)
    check = rooms_check(clock, room, limits=RoomLimits(media_update_timeout_seconds=60))
    await clock.advance(29)
    room.last_frame_at = clock.monotonic()
    assert by_measurement(await check.run())["media"].status is P
    await clock.advance(31)
    room.last_frame_at = clock.monotonic()
    results = by_measurement(await check.run())
    assert results["media"].status is F
    # pings still arrive: the connection is alive, so the stall alone does not tear it down
    assert results["liveness"].status is P
    assert results["liveness"].recovery is None
    # once a PING is overdue too, the stall is confirmed and a reconnect is asked for
    await clock.advance(31)
    results = by_measurement(await check.run())
    assert results["media"].status is F
    assert results["liveness"].status is W
    assert results["liveness"].recovery == ROOM_RECONNECT


async def test_not_ready_room_reports_state_only() -> None:
    clock = FakeClock()
    results = by_measurement(await rooms_check(clock, FakeRoom(state="backing_off", flaps_in_window=5)).run())
    assert set(results) == {"state", "flaps"}
    assert results["state"].status is F
    assert results["flaps"].status is F


async def test_room_recover_calls_reconnect_with_reason() -> None:
    clock = FakeClock()
    calls: list[tuple[str, str]] = []
    check = rooms_check(clock, FakeRoom(), calls)
    await check.recover("room:lobby", ROOM_RECONNECT, "liveness: silent")
    await check.recover("room:lobby", "something_else", "x")
    assert calls == [("lobby", "health:liveness: silent")]


async def test_database_latency_measured_on_the_clock() -> None:
    clock = FakeClock()
    delay = [0.05]

    async def ping() -> None:
        await clock.advance(delay[0])

    check = DatabaseCheck(ping, clock, T)
    for seconds, expected in ((0.05, P), (0.1, W), (0.999, W), (1.0, F)):
        delay[0] = seconds
        latency = by_measurement(await check.run())["latency"]
        assert latency.status is expected, seconds
        assert latency.observed_value == pytest.approx(seconds * 1000)
        assert latency.observed_unit == "ms"


async def test_database_down_fails_without_leaking_the_password() -> None:
    clock = FakeClock()

    async def ping() -> None:
        raise OSError("connect to postgresql://daz:s3cret@db:5432/daz refused")

    latency = by_measurement(await DatabaseCheck(ping, clock, T).run())["latency"]
    assert latency.status is F
    assert "OSError" in latency.output
    assert "s3cret" not in latency.output


async def test_pool_saturation_and_health() -> None:
    clock = FakeClock()

    async def ping() -> None:
        return None

    pool = [PoolView(size=10, in_use=3, waiting=0, max_size=10, health_score_min=0.9, health_score_avg=0.95)]
    check = DatabaseCheck(ping, clock, T, pool=lambda: pool[0], pool_health_threshold=0.3)
    results = by_measurement(await check.run())
    assert (results["saturation"].status, results["saturation"].observed_value) == (P, 30.0)
    assert results["connection_health"].status is P
    pool[0] = PoolView(size=10, in_use=8, waiting=0, max_size=10, health_score_min=0.2, health_score_avg=0.6)
    results = by_measurement(await check.run())
    assert (results["saturation"].status, results["connection_health"].status) == (W, W)
    pool[0] = PoolView(size=10, in_use=10, waiting=4, max_size=10, health_score_min=0.1, health_score_avg=0.2)
    results = by_measurement(await check.run())
    assert (results["saturation"].status, results["connection_health"].status) == (F, F)


async def test_queue_check() -> None:
    clock = FakeClock()
    view = [QueueView({"pending": 3, "processing": 1, "dead_letter": 2, "completed": 9}, 10.0, 0, reclaims=4)]

    async def stats() -> QueueView:
        return view[0]

    check = QueueCheck(stats, clock, T)
    results = by_measurement(await check.run())
    assert results["depth"].observed_value == 4
    assert "dead_letter=2" in results["depth"].output
    assert {k: r.status for k, r in results.items()} == {
        "depth": P, "oldest_pending": P, "dead_letters": P, "reclaims": P}
    assert results["reclaims"].observed_value == 4
    view[0] = QueueView({"pending": 3}, 600.0, 1)
    results = by_measurement(await check.run())
    assert (results["oldest_pending"].status, results["dead_letters"].status) == (W, W)
    view[0] = QueueView({"pending": 3}, 3600.0, 100)
    results = by_measurement(await check.run())
    assert (results["oldest_pending"].status, results["dead_letters"].status) == (F, F)


async def test_queue_unreachable_fails() -> None:
    clock = FakeClock()

    def stats() -> QueueView:
        raise ConnectionRefusedError("store down")

    results = by_measurement(await QueueCheck(stats, clock, T).run())
    assert results["depth"].status is F
    assert "store down" in results["depth"].output


async def test_breaker_open_warns_then_fails_after_the_limit() -> None:
    clock = FakeClock()
    rows: list[Mapping[str, Any]] = [{"name": "database", "state": "closed"}]
    check = BreakersCheck(lambda: rows, clock, HealthThresholds(breaker_open_fail_seconds=60))
    assert (await check.run())[0].status is P
    rows[0] = {"name": "database", "state": "open"}
    first = (await check.run())[0]
    assert (first.component, first.status) == ("breaker:database", W)
    await clock.advance(59)
    assert (await check.run())[0].status is W
    await clock.advance(1)
    assert (await check.run())[0].status is F
    rows[0] = {"name": "database", "state": "half_open"}
    assert (await check.run())[0].status is W
    rows[0] = {"name": "database", "state": "open"}  # re-opened: the clock starts again
    assert (await check.run())[0].status is W


async def test_spool_check() -> None:
    clock = FakeClock()
    depth = [0]
    check = SpoolCheck(lambda: depth[0], clock, T, capacity=10)
    statuses = []
    for n in (0, 1, 9, 10):
        depth[0] = n
        statuses.append((await check.run())[0].status)
    assert statuses == [P, W, W, F]


async def test_process_check_thresholds() -> None:
    clock = FakeClock()
    sample = [ProcessSample(rss_bytes=100 * 1024 * 1024, cpu_percent=5.0, open_fds=20)]
    probe = LoopLagProbe(clock, 0.5)
    check = ProcessCheck(clock, T, probe, sampler=lambda: sample[0])
    results = by_measurement(await check.run())
    assert "loop_lag" not in results  # no lag sample yet: nothing to report, nothing invented
    assert {k: r.status for k, r in results.items()} == {"memory": P, "cpu": P, "open_fds": P}
    assert results["memory"].observed_value == 100.0
    probe.observe(0.1)
    sample[0] = ProcessSample(rss_bytes=600 * 1024 * 1024, cpu_percent=85.0, open_fds=900)
    results = by_measurement(await check.run())
    assert {k: r.status for k, r in results.items()} == {"memory": W, "cpu": W, "open_fds": W, "loop_lag": W}
    probe.observe(1.5)
    sample[0] = ProcessSample(rss_bytes=2000 * 1024 * 1024, cpu_percent=99.0, open_fds=1000)
    results = by_measurement(await check.run())
    assert {k: r.status for k, r in results.items()} == {"memory": F, "cpu": F, "open_fds": F, "loop_lag": F}


async def test_real_psutil_sampler_reports_this_process() -> None:
    clock = FakeClock()
    results = by_measurement(await ProcessCheck(clock, T, None).run())
    assert results["memory"].observed_value is not None
    assert float(results["memory"].observed_value) > 1.0
    assert int(results["open_fds"].observed_value or 0) > 0


async def test_loop_lag_probe_records_late_wakeups() -> None:
    assert wake_delay(10.0, 0.5, 10.5) == 0.0
    assert wake_delay(10.0, 0.5, 10.75) == pytest.approx(0.25)
    assert wake_delay(10.0, 0.5, 10.4) == 0.0
    metrics = DazMetrics()
    probe = LoopLagProbe(FakeClock(), 0.5, metrics)
    assert probe.lag is None
    for lag in (0.01, 0.3, 0.02):
        probe.observe(lag)
    assert probe.lag == pytest.approx(0.3)  # the worst recent sample, so a stall is not hidden
    assert metrics.registry.get_sample_value("daz_event_loop_lag_seconds") == pytest.approx(0.02)


def test_describe_error_bounds_and_masks() -> None:
    text = describe_error(ValueError("postgresql://u:pw@h/db " + "x" * 500))
    assert "pw@" not in text
    assert len(text) < 260


async def test_room_without_handshake_values_uses_cytube_defaults() -> None:
    clock = FakeClock()
    room = FakeRoom(ping_interval=None, ping_timeout=None, last_frame_at=0.0)
    check = rooms_check(clock, room, limits=RoomLimits(liveness_margin_seconds=0))
    await clock.advance(144)
    assert by_measurement(await check.run())["liveness"].status is W
    await clock.advance(2)
    assert by_measurement(await check.run())["liveness"].status is F
