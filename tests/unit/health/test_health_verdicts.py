"""Every threshold of every verdict: pass, warn and fail on each side of its limit."""

from __future__ import annotations

import pytest

from daz.health import verdicts
from daz.health.types import HealthStatus, grade, worst

P, W, F = HealthStatus.PASS, HealthStatus.WARN, HealthStatus.FAIL


def test_worst_and_grade() -> None:
    assert worst([]) is P
    assert worst([P, W, P]) is W
    assert worst([W, F, P]) is F
    assert [grade(v, 10, 20) for v in (9.9, 10, 19.9, 20)] == [P, W, W, F]


@pytest.mark.parametrize(
    ("state", "degraded", "kicked", "expected"),
    [("ready", False, None, P), ("ready", True, None, W), ("connecting", False, None, W),
     ("joining", False, None, W), ("discovering", False, None, W), ("backing_off", False, None, F),
     ("disconnected", False, None, F), ("kicked", False, "Duplicate login", F), ("closed", False, None, F)],
)
def test_room_state(state: str, degraded: bool, kicked: str | None, expected: HealthStatus) -> None:
    status, output = verdicts.room_state(state, degraded=degraded, kicked_reason=kicked)
    assert status is expected
    assert (output == "") == (expected is P)
    if kicked:
        assert kicked in output


def test_liveness_follows_engineio_rule() -> None:
    limits = verdicts.LivenessLimits(ping_interval=25, ping_timeout=120, margin=5)
    assert limits.warn_after == 30
    assert limits.fail_after == 150
    assert verdicts.liveness(29.9, limits)[0] is P
    assert verdicts.liveness(30.1, limits)[0] is W
    assert verdicts.liveness(150.0, limits)[0] is W
    status, output = verdicts.liveness(150.1, limits)
    assert status is F
    assert "pingInterval+pingTimeout" in output


def test_media_timeout_never_on_idle_channel() -> None:
    for age in (0.0, 299.0, 10_000.0, 1e9):
        assert verdicts.media_updates(False, age, timeout=300) == (P, "")


def test_media_timeout_on_playing_channel() -> None:
    assert verdicts.media_updates(True, 149.9, timeout=300)[0] is P
    assert verdicts.media_updates(True, 150.0, timeout=300)[0] is W
    assert verdicts.media_updates(True, 300.0, timeout=300)[0] is F


def test_flaps() -> None:
    assert [verdicts.flaps(n, 5)[0] for n in (0, 1, 4, 5, 9)] == [P, W, W, F, F]


def test_latency() -> None:
    assert [verdicts.latency_ms(v, 100, 1000, "q")[0] for v in (99, 100, 999, 1000)] == [P, W, W, F]
    assert "1000ms" in verdicts.latency_ms(1500, 100, 1000, "q")[1]


def test_pool_saturation_fails_only_with_waiters() -> None:
    assert verdicts.pool_saturation(7, 0, 10, 0.8, 1.0)[0] is P
    assert verdicts.pool_saturation(8, 0, 10, 0.8, 1.0)[0] is W
    assert verdicts.pool_saturation(10, 0, 10, 0.8, 1.0)[0] is W
    assert verdicts.pool_saturation(10, 3, 10, 0.8, 1.0)[0] is F
    assert verdicts.pool_saturation(0, 1, 0, 0.8, 1.0)[0] is F


def test_pool_health_scores() -> None:
    assert verdicts.pool_health(None, None, 0.3)[0] is P
    assert verdicts.pool_health(0.9, 0.95, 0.3)[0] is P
    assert verdicts.pool_health(0.2, 0.8, 0.3)[0] is W
    assert verdicts.pool_health(0.1, 0.29, 0.3)[0] is F


def test_oldest_pending() -> None:
    assert verdicts.oldest_pending(None, 600, 3600)[0] is P
    assert [verdicts.oldest_pending(a, 600, 3600)[0] for a in (599, 600, 3599, 3600)] == [P, W, W, F]


def test_dead_letters() -> None:
    assert [verdicts.dead_letters(n, 1, 100)[0] for n in (0, 1, 99, 100)] == [P, W, W, F]
    assert verdicts.dead_letters(50, 0, 100)[0] is P  # warn 0 disables the warning


def test_breaker() -> None:
    assert verdicts.breaker("closed", 0, 300)[0] is P
    assert verdicts.breaker("disabled", 0, 300)[0] is P
    assert verdicts.breaker("half_open", 0, 300)[0] is W
    assert verdicts.breaker("open", 299, 300)[0] is W
    assert verdicts.breaker("open", 300, 300)[0] is F
    assert verdicts.breaker("forced_open", 10_000, 300)[0] is W


def test_spool() -> None:
    assert [verdicts.spool(n, 1, 100)[0] for n in (0, 1, 99, 100)] == [P, W, W, F]


def test_threshold() -> None:
    assert [verdicts.threshold(v, 512, 1024, "RSS", "MiB")[0] for v in (511, 512, 1023, 1024)] == [P, W, W, F]
