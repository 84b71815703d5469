"""The cluster health check and the status page's instance table."""

from __future__ import annotations

from daz.cluster.coordinator import ClusterCoordinator, ClusterSnapshot, HeldRoom
from daz.cluster.health import ClusterCheck
from daz.config import ClusterConfig
from daz.events import EventBus
from daz.health.types import HealthStatus
from daz.metrics import DazMetrics
from daz.testing import FakeClock

CONFIG = ClusterConfig(enabled=True, lease_seconds=10, renew_interval_seconds=3)


async def _noop_acquire(room: str, fence: int) -> None:
    return None


async def _noop_lose(room: str, reason: str) -> None:
    return None


def coordinator(clock: FakeClock) -> ClusterCoordinator:
    return ClusterCoordinator(
        dsn="postgresql://unused", instance_id="a", rooms=["r1", "r2"], config=CONFIG, bus=EventBus(),
        metrics=DazMetrics(), clock=clock, on_acquire=_noop_acquire, on_lose=_noop_lose,
    )


async def test_renewal_age_drives_pass_warn_fail() -> None:
    clock = FakeClock()
    coord = coordinator(clock)
    check = ClusterCheck(coord, clock)
    assert (await check.run())[0].status is HealthStatus.FAIL  # never renewed
    coord.last_tick_ok = clock.monotonic()
    await clock.advance(1)
    assert (await check.run())[0].status is HealthStatus.PASS
    await clock.advance(6)  # 7 s: past two renew intervals
    assert (await check.run())[0].status is HealthStatus.WARN
    await clock.advance(4)  # 11 s: past the lease
    assert (await check.run())[0].status is HealthStatus.FAIL


async def test_rooms_held_is_reported() -> None:
    clock = FakeClock()
    coord = coordinator(clock)
    coord.held["r1"] = HeldRoom(fence=3, renewed_at=0)
    held = (await ClusterCheck(coord, clock).run())[1]
    assert held.observed_value == 1
    assert held.output == "1 of 2 rooms"


def test_instance_rows_show_who_owns_which_room_and_lease_ages() -> None:
    coord = coordinator(FakeClock())
    coord.snapshot = ClusterSnapshot(
        instance_id="a",
        instances=[{"instance_id": "a", "hostname": "h1", "pid": 1, "heartbeat_age": 0.4, "uptime": 30.2},
                   {"instance_id": "b", "hostname": "h2", "pid": 2, "heartbeat_age": 1.0, "uptime": 9.0}],
        leases=[{"room": "r1", "owner": "a", "expires_in": 5.0, "fence": 1, "held_for": 12.3},
                {"room": "r2", "owner": "b", "expires_in": 4.0, "fence": 2, "held_for": 3.0},
                {"room": "r3", "owner": "b", "expires_in": -1.0, "fence": 2, "held_for": 50.0}],
    )
    rows = coord.instance_rows()
    assert [r["instance"] for r in rows] == ["a (this)", "b"]
    assert rows[0]["rooms (lease age)"] == "r1 (12s)"
    assert rows[1]["rooms (lease age)"] == "r2 (3s)"  # the expired lease is not shown as owned
