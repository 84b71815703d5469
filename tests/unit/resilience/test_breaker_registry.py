"""BreakerRegistry: per-name settings, operator actions, snapshots."""

from __future__ import annotations

import random

import pytest

from daz.config import BreakerConfig, validate_config
from daz.errors import CircuitOpen, UnknownBreaker
from daz.events.bus import EventBus
from daz.resilience.machine import BreakerState
from daz.resilience.registry import BreakerRegistry
from daz.testing import FakeClock


def registry(bus: EventBus | None = None) -> BreakerRegistry:
    config = validate_config({"breakers": {
        "default": {"minimum_calls": 7},
        "database": {"minimum_calls": 3, "window_type": "time"},
        "cytube": {"minimum_calls": 5},
        "cytube:lobby": {"minimum_calls": 2},
    }})
    return BreakerRegistry(config, bus, None, FakeClock(), random.Random(1))


def test_settings_by_exact_name_then_family_then_default() -> None:
    reg = registry()
    assert reg.get("database").config.minimum_calls == 3
    assert reg.get("cytube:lobby").config.minimum_calls == 2
    assert reg.get("cytube:other").config.minimum_calls == 5
    assert reg.get("http:example.org").config.minimum_calls == 7
    assert reg.get("database") is reg.get("database")
    bare = BreakerRegistry({}, None, None, FakeClock(), random.Random(1))
    assert bare.get("x").config == BreakerConfig()


def test_names_lists_configured_breakers_and_those_in_use_but_not_families() -> None:
    reg = registry()
    reg.get("http:example.org")
    assert reg.names() == ["cytube:lobby", "database", "http:example.org"]
    assert [row["name"] for row in reg.snapshot()] == reg.names()


async def test_operator_actions_change_state_and_are_published() -> None:
    clock = FakeClock()
    async with EventBus(clock=clock) as bus:
        reg = registry(bus)
        async with bus.recording("breaker.**") as events:
            reg.force_open("database")
            with pytest.raises(CircuitOpen):
                reg.get("database").acquire()
            reg.disable("database")
            reg.force_close("database")
            reg.force_open("database")
            reg.reset("database")
            await bus.drain()
    assert reg.get("database").state is BreakerState.CLOSED
    actions = [e.data["action"] for e in events if e.name == "breaker.operator_action"]
    assert actions == ["force_open", "disable", "force_close", "force_open", "reset"]
    reasons = [e.data["reason"] for e in events if e.name == "breaker.state_changed"]
    assert reasons == ["operator_force_open", "operator_disable", "operator_force_close",
                       "operator_force_open", "operator_reset"]
    assert all(e.source == "operator" for e in events if e.name == "breaker.operator_action")


def test_operators_cannot_create_breakers_with_arbitrary_names() -> None:
    reg = registry()
    with pytest.raises(UnknownBreaker, match="no circuit breaker named 'nope'"):
        reg.force_open("nope")
    assert "nope" not in reg.names()


def test_snapshot_shows_window_figures_and_next_probe() -> None:
    reg = registry()
    breaker = reg.get("cytube:lobby")
    for _ in range(2):
        breaker.acquire().done(ConnectionError())
    (row,) = [r for r in reg.snapshot() if r["name"] == "cytube:lobby"]
    assert row["state"] == "open"
    assert row["calls"] == 2
    assert row["failure_rate"] == 1.0
    assert row["reason"] == "failure_rate"
    assert row["next_probe_at"] is not None
    assert row["retry_after_seconds"] > 0
    assert row["opened_total"] == 1


def test_act_maps_api_action_names() -> None:
    reg = registry()
    for action, expected in (("open", BreakerState.FORCED_OPEN), ("disable", BreakerState.DISABLED),
                             ("close", BreakerState.CLOSED)):
        reg.act("database", action)
        assert reg.get("database").state is expected
    with pytest.raises(ValueError, match="unknown breaker action 'explode'"):
        reg.act("database", "explode")
