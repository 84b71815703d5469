"""One state-change hook for every state machine: each move is a bus event, a log line and a gauge.

Each machine (room, breaker, plugin) is driven through real transitions here and all three outputs
are read back; the plugin host's transition table refuses a move it does not list.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.unit.cytube.conftest import harness, make_config

from daz.config import BreakerConfig
from daz.cytube.states import RoomState
from daz.errors import IllegalTransition
from daz.events.bus import Event, EventBus
from daz.events.state_change import PLUGIN, ROOM, StateChange, StateChangeHook
from daz.metrics import BREAKER_STATE_CODES, PLUGIN_STATE_CODES, ROOM_STATE_CODES, DazMetrics
from daz.plugins.base import PluginContext
from daz.plugins.host import PluginHost, RestartPolicy
from daz.plugins.states import TRANSITIONS, PluginState, PluginStatus, check_transition
from daz.resilience.breaker import CircuitBreaker
from daz.resilience.machine import Trigger
from daz.testing import FakeClock
from daz.testing.fake_transport import FakeNetwork


def _gauge(metrics: DazMetrics, name: str, labels: Mapping[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, dict(labels))


def _moves(logs: list[dict[str, Any]], event: str) -> list[tuple[str, str]]:
    return [(line["from_state"], line["to_state"]) for line in logs if line["event"] == event]


async def test_room_transitions_give_event_log_line_and_gauge() -> None:
    network = FakeNetwork()
    with capture_logs() as logs:
        async with harness(make_config(), network) as h:
            await h.until(RoomState.READY)
            await h.settle()
            assert _gauge(h.metrics, "daz_room_state", {"room": "lobby"}) == ROOM_STATE_CODES["ready"]
            events = [(e["from"], e["to"]) for e in h.named("room.state_changed")]
    expected = [("disconnected", "discovering"), ("discovering", "connecting"), ("connecting", "joining"),
                ("joining", "ready")]
    assert events[:4] == expected
    assert _moves(logs, "room.state_changed")[:4] == expected
    ready = next(line for line in logs
                 if line["event"] == "room.state_changed" and line["to_state"] == "ready")
    assert ready["room"] == "lobby"
    assert ready["reason"].startswith("logged in as")
    assert ready["log_level"] == "info"


async def test_breaker_transitions_give_event_log_line_and_gauge() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    async with EventBus(clock=clock, metrics=metrics) as bus, bus.recording("breaker.**") as events:
        breaker = CircuitBreaker("database", BreakerConfig(), clock=clock, rng=random.Random(1), bus=bus,
                                 metrics=metrics)
        label = {"name": "database"}
        assert _gauge(metrics, "daz_breaker_state", label) == BREAKER_STATE_CODES["closed"]
        with capture_logs() as logs:
            breaker.operate(Trigger.FORCE_OPEN)
            assert _gauge(metrics, "daz_breaker_state", label) == BREAKER_STATE_CODES["forced_open"]
            breaker.operate(Trigger.FORCE_CLOSE)
            assert _gauge(metrics, "daz_breaker_state", label) == BREAKER_STATE_CODES["closed"]
        await bus.drain()
    moves = [("closed", "forced_open"), ("forced_open", "closed")]
    assert [(e.data["from"], e.data["to"]) for e in events if e.name == "breaker.state_changed"] == moves
    assert _moves(logs, "breaker.state_changed") == moves
    opened = logs[0]
    assert (opened["breaker"], opened["reason"], opened["log_level"]) == (
        "database", "operator_force_open", "warning")
    first = next(e for e in events if e.name == "breaker.state_changed")
    assert set(first.data) == {"name", "from", "to", "reason", "failure_rate", "slow_rate", "retry_after"}
    assert first.source == "breaker:database"


class _CrashOnce:
    """Crashes in its first ``run``; the restarted instance keeps running."""

    depends_on: tuple[str, ...] = ()
    crashes = 0

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.name = "flaky"

    async def setup(self, ctx: PluginContext) -> None:
        return None

    async def run(self, stopping: asyncio.Event) -> None:
        if _CrashOnce.crashes == 0:
            _CrashOnce.crashes += 1
            raise RuntimeError("first run fails")
        await stopping.wait()


async def test_plugin_transitions_give_event_log_line_and_gauge() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    _CrashOnce.crashes = 0
    seen: list[Event] = []
    with capture_logs() as logs:
        async with EventBus(clock=clock, metrics=metrics) as bus, bus.recording("plugin.**") as seen:
            host = PluginHost({"flaky": {}}, bus=bus, clock=clock, metrics=metrics,
                              factories={"flaky": _CrashOnce},
                              policy=RestartPolicy(base_seconds=1.0, cap_seconds=1.0))
            gauge = {"plugin": "flaky"}
            assert _gauge(metrics, "daz_plugin_state", gauge) == PLUGIN_STATE_CODES["starting"]
            stopping = asyncio.Event()
            async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
                tg.create_task(host.run(stopping))
                for _ in range(2000):
                    if host.statuses["flaky"].state is PluginState.BACKING_OFF:
                        break
                    await asyncio.sleep(0)
                assert _gauge(metrics, "daz_plugin_state", gauge) == PLUGIN_STATE_CODES["backing_off"]
                for _ in range(200):
                    if host.statuses["flaky"].state is PluginState.RUNNING and _CrashOnce.crashes:
                        break
                    await clock.advance(0.5)
                assert _gauge(metrics, "daz_plugin_state", gauge) == PLUGIN_STATE_CODES["running"]
                stopping.set()
            assert _gauge(metrics, "daz_plugin_state", gauge) == PLUGIN_STATE_CODES["stopped"]
            await bus.drain()
    moves = [("starting", "running"), ("running", "backing_off"), ("backing_off", "starting"),
             ("starting", "running"), ("running", "stopped")]
    assert [(e.data["from"], e.data["to"]) for e in seen if e.name == "plugin.state_changed"] == moves
    assert _moves(logs, "plugin.state_changed") == moves
    crashed = next(line for line in logs if line["event"] == "plugin.state_changed"
                   and line["to_state"] == "backing_off")
    assert (crashed["plugin"], crashed["reason"], crashed["log_level"]) == ("flaky", "crashed", "warning")


def test_the_plugin_table_refuses_a_move_it_does_not_list() -> None:
    allowed = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    for source in PluginState:
        for target in PluginState:
            if (source, target) in allowed:
                check_transition(source, target)
            else:
                with pytest.raises(IllegalTransition, match=f"{source.value} → {target.value}"):
                    check_transition(source, target)
    assert (PluginState.STOPPED, PluginState.RUNNING) not in allowed


async def test_the_host_raises_on_an_illegal_move_and_announces_nothing() -> None:
    clock = FakeClock()
    metrics = DazMetrics()
    async with EventBus(clock=clock, metrics=metrics) as bus, bus.recording("plugin.**") as seen:
        host = PluginHost({"flaky": {}}, bus=bus, clock=clock, metrics=metrics,
                          factories={"flaky": _CrashOnce})
        status: PluginStatus = host.statuses["flaky"]
        status.state = PluginState.STOPPED
        with capture_logs() as logs, pytest.raises(IllegalTransition):
            host._transition(status, PluginState.RUNNING, "restart")  # the host's one door for moves
        await bus.drain()
    assert status.state is PluginState.STOPPED
    assert logs == []
    assert [e for e in seen if e.name == "plugin.state_changed"] == []
    assert _gauge(metrics, "daz_plugin_state", {"plugin": "flaky"}) == PLUGIN_STATE_CODES["starting"]


def test_the_hook_alone_without_bus_or_metrics_still_logs() -> None:
    hook = StateChangeHook(bus=None, metrics=None)
    with capture_logs() as logs:
        hook(StateChange(ROOM, "lobby", "ready", "backing_off", "disconnected", details={"attempt": 1}))
        hook(StateChange(PLUGIN, "chatlog", "running", "stopped", "stopping"))
    assert [(line["event"], line.get("room", line.get("plugin"))) for line in logs] == [
        ("room.state_changed", "lobby"), ("plugin.state_changed", "chatlog")]
    assert logs[0]["attempt"] == 1
