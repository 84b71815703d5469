"""The monitor against the real RoomManager/RoomSupervisor over FakeTransport, on FakeClock.

The supervisor has its own liveness watchdog; here its margin is set wider than the monitor's so
the reconnect that happens is demonstrably the monitor's recovery action, not the watchdog's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from daz.config import CytubeConfig, DazConfig, HealthConfig, ProbeConfig, RoomConfig
from daz.cytube.rooms import RoomManager
from daz.cytube.states import RoomState
from daz.events.bus import Event, EventBus
from daz.health.checks import RoomLimits, RoomsCheck
from daz.health.monitor import HealthMonitor
from daz.metrics import DazMetrics
from daz.testing.clock import FakeClock
from daz.testing.fake_transport import FakeNetwork

SUPERVISOR_MARGIN = 30.0  # the room's own watchdog gives up after interval+timeout+30 s
MONITOR_MARGIN = 0.0      # the health check fails after interval+timeout


@dataclass
class Rig:
    clock: FakeClock
    network: FakeNetwork
    manager: RoomManager
    monitor: HealthMonitor
    metrics: DazMetrics
    events: list[Event]

    def state(self) -> RoomState:
        return self.manager.room("lobby").state

    async def until(self, predicate: object, *, step: float, limit: int) -> float:
        """Advance ``step`` at a time until ``predicate()``; returns the fake seconds it took."""
        start = self.clock.monotonic()
        for _ in range(limit):
            if predicate():  # type: ignore[operator]
                return self.clock.monotonic() - start
            await self.clock.advance(step)
        raise AssertionError(f"condition not reached in {limit} steps; room is {self.state().value}")

    def recoveries(self) -> float:
        value = self.metrics.registry.get_sample_value(
            "daz_recovery_actions_total", {"action": "room_reconnect"})
        return value or 0.0


@contextlib.asynccontextmanager
async def rig(network: FakeNetwork, **cytube: Any) -> AsyncIterator[Rig]:
    config = DazConfig(
        rooms=[RoomConfig(channel="lobby", username="dazbot")],
        cytube=CytubeConfig(probe=ProbeConfig(enabled=False), liveness_margin_seconds=SUPERVISOR_MARGIN,
                            **cytube),
    )
    clock = FakeClock()
    metrics = DazMetrics()
    async with EventBus(clock=clock, metrics=metrics) as bus, bus.recording("**") as events:
        manager = RoomManager(config, bus, metrics, clock, random.Random(7), network.factory,
                              endpoint_factory=network.endpoint)
        limits = RoomLimits(media_update_timeout_seconds=config.cytube.media_update_timeout_seconds,
                            liveness_margin_seconds=MONITOR_MARGIN,
                            flap_threshold=config.cytube.flap_threshold)
        check = RoomsCheck(lambda: [manager.room(n) for n in manager.rooms()], manager.reconnect, clock,
                           limits)
        monitor = HealthMonitor([check], bus, metrics, clock,
                                HealthConfig(interval_seconds=1.0, recovery_min_interval_seconds=30))
        stopping = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(manager.run(stopping), name="test.rooms")
            tg.create_task(monitor.run(stopping), name="test.monitor")
            try:
                yield Rig(clock, network, manager, monitor, metrics, events)
            finally:
                stopping.set()
                await clock.advance(0)


async def test_silent_connection_is_reconnected_by_the_monitor() -> None:
    network = FakeNetwork(ping_interval=2.0, ping_timeout=3.0)
    async with rig(network) as r:
        await r.until(lambda: r.state() is RoomState.READY, step=0.25, limit=100)
        transport = network.current
        assert transport is not None
        transport.silent = True
        took = await r.until(lambda: r.recoveries() >= 1, step=0.25, limit=100)
        # the check fails past interval+timeout (5 s) and the next 1 s tick acts; the watchdog
        # would have waited 35 s
        assert 5.0 < took <= 6.5
        await r.until(lambda: network.connects >= 2 and r.state() is RoomState.READY, step=0.25, limit=400)
        reasons = [str(e.data.get("reason")) for e in r.events if e.name == "room.state_changed"
                   and e.data.get("from") in (RoomState.READY, "ready")]
        assert any("health" in reason and "liveness" in reason for reason in reasons), reasons
        assert [e.data["action"] for e in r.events if e.name == "health.recovery"] == ["room_reconnect"]
        assert r.metrics.registry.get_sample_value(
            "daz_health_check_status", {"component": "room:lobby"}) is not None


async def test_idle_channel_never_trips_the_media_timeout_but_a_stalled_player_does() -> None:
    network = FakeNetwork(ping_interval=25.0, ping_timeout=120.0)
    async with rig(network, media_update_timeout_seconds=60.0) as r:
        await r.until(lambda: r.state() is RoomState.READY, step=0.25, limit=100)
        transport = network.current
        assert transport is not None
        for _ in range(2 * 3600 // 25):  # two idle hours: PINGs only, no media at all
            await r.clock.advance(25)
            transport.ping()
        report = r.monitor.latest()
        assert report is not None
        media = next(x for x in report.components["room:lobby"].results if x.measurement == "media")
        assert media.status.value == "pass"
        assert r.recoveries() == 0
        assert network.connects == 1

        transport.push("changeMedia", {"id": "abc", "type": "yt", "title": "t", "seconds": 600,
                                       "currentTime": 0, "paused": False})
        transport.push("mediaUpdate", {"currentTime": 1, "paused": False})
        await r.clock.advance(0)
        assert r.manager.room("lobby").media_playing
        for _ in range(4):  # the media updates stop; PINGs keep coming
            await r.clock.advance(20)
            transport.ping()
        await r.clock.advance(1)
        report = r.monitor.latest()
        assert report is not None
        media = next(x for x in report.components["room:lobby"].results if x.measurement == "media")
        assert media.status.value == "fail"
        assert r.recoveries() == 0  # pings prove the link is alive: no teardown on the stall alone
        assert network.connects == 1
