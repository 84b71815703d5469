from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import pytest
from plugin_fakes import FakeSend, chat, running_host, wait_for

from daz.backoff import proportional_bounds
from daz.errors import ConfigError
from daz.events.bus import Event
from daz.plugins.base import PluginContext
from daz.plugins.host import (
    RestartPolicy,
    enabled_sections,
    order_plugins,
    resolve_factory,
    restart_delay,
)
from daz.plugins.states import PluginState, PluginStatus, plugin_verdict
from daz.testing import FakeClock


class Recorder:
    """Counts chat events; records its lifecycle calls in a shared journal."""

    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any], journal: list[str], name: str,
                 deps: tuple[str, ...] = ()) -> None:
        self.name = name
        self.depends_on = deps
        self.journal = journal
        self.seen: list[Event] = []

    async def setup(self, ctx: PluginContext) -> None:
        self.journal.append(f"setup:{self.name}")
        ctx.subscribe("cytube.chat", self.seen.append)

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self.journal.append(f"stop:{self.name}")


class Exploder:
    """Raises on every event it receives."""

    name = "exploder"
    depends_on: tuple[str, ...] = ()
    instances = 0

    def __init__(self, config: Mapping[str, Any]) -> None:
        type(self).instances += 1

    async def setup(self, ctx: PluginContext) -> None:
        ctx.subscribe("cytube.chat", self.boom)

    def boom(self, event: Event) -> None:
        raise RuntimeError("boom on every event")

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()


def test_order_puts_dependencies_first_and_keeps_config_order_otherwise() -> None:
    assert order_plugins({"a": ("c",), "b": (), "c": ("b",)}) == ["b", "c", "a"]
    assert order_plugins({"x": (), "y": ()}) == ["x", "y"]


def test_order_rejects_cycles_and_missing_dependencies() -> None:
    with pytest.raises(ConfigError, match=r"cycle a -> b -> a"):
        order_plugins({"a": ("b",), "b": ("a",)})
    with pytest.raises(ConfigError, match=r"plugins\.a: depends on 'zzz'"):
        order_plugins({"a": ("zzz",)})


def test_enabled_flag_is_read_by_the_host() -> None:
    assert enabled_sections({"a": {"enabled": False}, "b": {"x": 1}}) == {"b": {"x": 1}}
    with pytest.raises(ConfigError, match=r"plugins\.a\.enabled"):
        enabled_sections({"a": {"enabled": "yes"}})


def test_unknown_plugin_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.nosuch: no such plugin \(known: .*chatlog"):
        resolve_factory("nosuch")
    assert resolve_factory("commands").__name__ == "CommandsPlugin"


def test_restart_delay_follows_the_seed_schedule_with_the_plugin_policy() -> None:
    policy = RestartPolicy(base_seconds=1.0, cap_seconds=8.0)
    rng = random.Random(7)
    for attempt in range(1, 8):
        low, high = proportional_bounds(attempt, base=1.0, cap=8.0)
        assert low <= restart_delay(attempt, rng, policy) <= high
    assert restart_delay(6, rng, policy) <= 8.0


def test_verdicts() -> None:
    status = PluginStatus("p", state=PluginState.RUNNING)
    assert plugin_verdict(status, now=100.0) == "pass"
    status.last_crash_at = 90.0
    assert plugin_verdict(status, now=100.0, window=60) == "warn"
    assert plugin_verdict(status, now=200.0, window=60) == "pass"
    status.state = PluginState.BACKING_OFF
    assert plugin_verdict(status, now=200.0) == "fail"


async def test_plugins_start_in_dependency_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    factories = {
        "late": lambda c: Recorder(c, journal, "late", ("early",)),
        "early": lambda c: Recorder(c, journal, "early"),
    }
    async with running_host({"late": {}, "early": {}}, factories=factories) as (host, _, _):
        assert host.order == ["early", "late"]
    assert journal == ["setup:early", "setup:late", "stop:late", "stop:early"]
    assert all(s.state is PluginState.STOPPED for s in host.statuses.values())


async def test_crashing_plugin_is_restarted_with_backoff_and_others_keep_working() -> None:
    clock = FakeClock()
    journal: list[str] = []
    healthy = Recorder({}, journal, "healthy")
    Exploder.instances = 0
    factories = {"healthy": lambda c: healthy, "exploder": Exploder}
    policy = RestartPolicy(base_seconds=2.0, cap_seconds=16.0, stable_after_seconds=1000)
    async with running_host({"exploder": {}, "healthy": {}}, clock=clock, factories=factories,
                            policy=policy) as (host, bus, _):
        status = host.statuses["exploder"]
        delays: list[float] = []
        for i in range(4):
            bus.publish("cytube.chat", chat("lobby", "alice", f"line {i}", i))
            await wait_for(lambda: status.state is PluginState.BACKING_OFF)
            assert status.next_delay is not None
            delays.append(status.next_delay)
            low, high = proportional_bounds(i + 1, base=2.0, cap=16.0)
            assert low <= status.next_delay <= high
            assert host.verdicts()["exploder"] == "fail"
            # Not restarted before its delay has passed...
            await clock.advance(status.next_delay * 0.5)
            assert status.state is PluginState.BACKING_OFF
            # ...and restarted once it has.
            await clock.advance(status.next_delay)
            await wait_for(lambda: status.state is PluginState.RUNNING)
        assert status.restarts == 4
        assert Exploder.instances == 5  # a fresh instance per start
        assert delays[3] > delays[0]
        assert "boom on every event" in (status.last_error or "")
        assert host.verdicts() == {"exploder": "warn", "healthy": "pass"}
        assert host.metrics.plugin_restarts.labels(plugin="exploder")._value.get() == 4
        # The healthy plugin saw every event, and the crash never reached the bus's own handler.
        await bus.drain()
        assert [e.data["event"]["text"] for e in healthy.seen] == [f"line {i}" for i in range(4)]
        assert not any(s["failures"] for s in bus.stats())


async def test_restart_counter_resets_after_a_stable_run() -> None:
    clock = FakeClock()
    Exploder.instances = 0
    policy = RestartPolicy(base_seconds=2.0, cap_seconds=64.0, stable_after_seconds=30)
    async with running_host({"exploder": {}}, clock=clock, factories={"exploder": Exploder},
                            policy=policy) as (host, bus, _):
        status = host.statuses["exploder"]
        for i in range(3):
            bus.publish("cytube.chat", chat("lobby", "bob", "x", i))
            await wait_for(lambda: status.state is PluginState.BACKING_OFF)
            await clock.advance(status.next_delay or 0)
            await wait_for(lambda: status.state is PluginState.RUNNING)
        assert status.consecutive_crashes == 3
        await clock.advance(31)
        bus.publish("cytube.chat", chat("lobby", "bob", "x", 9))
        await wait_for(lambda: status.state is PluginState.BACKING_OFF)
        assert status.consecutive_crashes == 1
        assert status.next_delay is not None
        assert status.next_delay <= proportional_bounds(1, base=2.0, cap=64.0)[1]


class SetupFails:
    name = "setupfails"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any]) -> None:
        pass

    async def setup(self, ctx: PluginContext) -> None:
        raise ValueError("bad setup")

    async def run(self, stopping: asyncio.Event) -> None:
        raise AssertionError("never runs")


async def test_setup_failure_is_supervised_and_stop_interrupts_the_backoff() -> None:
    clock = FakeClock()
    async with running_host({"setupfails": {}}, clock=clock, factories={"setupfails": SetupFails},
                            wait_running=False) as (host, _, _):
        status = host.statuses["setupfails"]
        await wait_for(lambda: status.state is PluginState.BACKING_OFF)
        assert status.last_error == "ValueError: bad setup"
    assert status.state is PluginState.STOPPED


async def test_state_changes_are_published() -> None:
    async with running_host({"exploder": {}}, factories={"exploder": Exploder}) as (host, bus, _):
        async with bus.recording("plugin.**") as seen:
            bus.publish("cytube.chat", chat("lobby", "a", "b", 1))
            await wait_for(lambda: host.statuses["exploder"].state is PluginState.BACKING_OFF)
            await bus.drain()
        names = [e.name for e in seen]
        assert "plugin.crashed" in names
        changed = [e.data for e in seen if e.name == "plugin.state_changed"]
        assert changed[-1]["from"] == "running"
        assert changed[-1]["to"] == "backing_off"


async def test_builtins_load_by_name_and_greeter_is_off_by_default() -> None:
    from daz.config import DazConfig

    defaults = DazConfig().plugins
    assert "greeter" not in defaults
    send = FakeSend()
    async with running_host({"commands": {}, "greeter": {"enabled": False}}, send=send) as (host, _, _):
        assert host.order == ["commands"]
