"""Pure decisions of the room state machine."""

from __future__ import annotations

import random

import pytest

from daz.backoff import proportional_bounds
from daz.config import BackoffConfig, ProbeConfig
from daz.cytube.states import (
    TRANSITIONS,
    IllegalTransition,
    Liveness,
    RoomState,
    check_transition,
    is_degraded,
    is_fatal_kick,
    liveness,
    probe_delay,
    reconnect_delay,
    record_flap,
)
from daz.metrics import ROOM_STATE_CODES


def test_every_state_has_a_gauge_code_and_closed_is_terminal() -> None:
    assert {s.value for s in RoomState} == set(ROOM_STATE_CODES)
    assert TRANSITIONS[RoomState.CLOSED] == frozenset()
    for state in RoomState:
        if state is not RoomState.CLOSED:
            check_transition(state, RoomState.CLOSED)


def test_illegal_transitions_raise() -> None:
    with pytest.raises(IllegalTransition):
        check_transition(RoomState.DISCONNECTED, RoomState.READY)
    with pytest.raises(IllegalTransition):
        check_transition(RoomState.KICKED, RoomState.BACKING_OFF)


def test_reconnect_delay_is_the_seed_interval_and_rate_limit_waits_ten_seconds() -> None:
    rng = random.Random(7)
    for attempt in range(1, 13):
        low, high = proportional_bounds(attempt)
        assert low <= reconnect_delay(attempt, rng, BackoffConfig()) <= high
    assert reconnect_delay(1, rng, BackoffConfig(), rate_limited=True, rate_limit_min_wait=10) >= 10


def test_probe_delay_is_capped_and_jittered() -> None:
    cfg = ProbeConfig(interval_seconds=1.0, max_interval_seconds=3.0)
    rng = random.Random(1)
    delays = [probe_delay(n, rng, cfg) for n in range(50)]
    assert all(0.5 <= d <= 3.0 for d in delays)
    assert len(set(delays)) == len(delays)


def test_flaps_count_only_short_sessions_inside_the_window() -> None:
    flaps: tuple[float, ...] = ()
    for t in (10.0, 20.0, 30.0):
        flaps = record_flap(flaps, t, ready_for=1.0, stable_after=60, window=600)
    flaps = record_flap(flaps, 40.0, ready_for=100.0, stable_after=60, window=600)  # stable: no flap
    assert flaps == (10.0, 20.0, 30.0)
    assert is_degraded(flaps, 40.0, window=600, threshold=3)
    assert not is_degraded(flaps, 615.0, window=600, threshold=3)


def test_duplicate_login_is_the_fatal_kick() -> None:
    assert is_fatal_kick("Duplicate login")
    assert not is_fatal_kick("Too many connections from your IP address")


def _verdict(now: float, **kw: object) -> Liveness:
    args: dict[str, object] = {
        "last_frame_at": 0.0,
        "ping_interval": 25.0,
        "ping_timeout": 120.0,
        "margin": 5.0,
        "media_playing": False,
        "last_media_update_at": None,
        "media_timeout": 300.0,
    }
    args.update(kw)
    return liveness(now, **args).kind  # type: ignore[arg-type]


def test_liveness_rule_uses_interval_plus_timeout() -> None:
    assert _verdict(149.0) is Liveness.ALIVE
    assert _verdict(150.5) is Liveness.DEAD


def test_idle_channel_never_triggers_the_media_timeout() -> None:
    # Frames (PINGs) keep arriving, nothing plays: hours of no mediaUpdate are healthy.
    for hour in range(1, 25):
        now = hour * 3600.0
        assert _verdict(now, last_frame_at=now - 1, last_media_update_at=0.0) is Liveness.ALIVE


def test_media_timeout_is_confirmed_by_overdue_ping() -> None:
    playing = {"media_playing": True, "last_media_update_at": 0.0}
    assert _verdict(301.0, last_frame_at=300.0, **playing) is Liveness.MEDIA_STALE
    assert _verdict(340.0, last_frame_at=300.0, **playing) is Liveness.DEAD
    assert _verdict(340.0, last_frame_at=300.0, media_playing=False, last_media_update_at=0.0) is (
        Liveness.ALIVE
    )


def test_ping_overdue_counts_from_the_last_ping_or_the_handshake() -> None:
    from daz.cytube.states import ping_overdue

    assert ping_overdue(30.0, last_ping_at=None, connected_at=0.0, ping_interval=25, grace=10) is None
    assert ping_overdue(36.0, last_ping_at=None, connected_at=0.0, ping_interval=25, grace=10) == 1.0
    assert ping_overdue(36.0, last_ping_at=25.0, connected_at=0.0, ping_interval=25, grace=10) is None
    assert ping_overdue(60.5, last_ping_at=25.0, connected_at=0.0, ping_interval=25, grace=10) == 0.5
    assert ping_overdue(99.0, last_ping_at=None, connected_at=None, ping_interval=25, grace=10) is None


def test_new_states_leave_only_by_the_table() -> None:
    check_transition(RoomState.DISCOVERING, RoomState.PARKED)
    check_transition(RoomState.PARKED, RoomState.WAITING)
    check_transition(RoomState.WAITING, RoomState.CONNECTING)
    check_transition(RoomState.READY, RoomState.STOPPED)
    check_transition(RoomState.STOPPED, RoomState.DISCOVERING)
    with pytest.raises(IllegalTransition):
        check_transition(RoomState.PARKED, RoomState.READY)
    with pytest.raises(IllegalTransition):
        check_transition(RoomState.STOPPED, RoomState.BACKING_OFF)
