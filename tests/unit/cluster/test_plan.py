"""Pure lease planning: fair share, take-over of dead owners, slow rebalancing, leaving in time."""

from __future__ import annotations

import pytest

from daz.cluster.plan import LeaseView, fair_share, must_leave, plan_leases

ROOMS = [f"room{i}" for i in range(6)]


def lease(room: str, owner: str | None, expires_in: float = 5.0, fence: int = 1) -> LeaseView:
    return LeaseView(room=room, owner=owner, expires_in=expires_in, fence=fence)


@pytest.mark.parametrize(
    ("rooms", "instances", "share"), [(0, 3, 0), (6, 3, 2), (7, 3, 3), (6, 1, 6), (2, 5, 1), (6, 0, 6)]
)
def test_fair_share(rooms: int, instances: int, share: int) -> None:
    assert fair_share(rooms, instances) == share


def test_alone_takes_every_free_room() -> None:
    plan = plan_leases("a", ROOMS, {}, ["a"], allow_release=False)
    assert sorted(plan.acquire) == ROOMS
    assert plan.release == ()


def test_takes_only_its_share_when_others_are_alive() -> None:
    plan = plan_leases("a", ROOMS, {}, ["a", "b", "c"], allow_release=False)
    assert len(plan.acquire) == 2


def test_never_takes_a_live_owners_unexpired_room() -> None:
    leases = {r: lease(r, "b") for r in ROOMS}
    plan = plan_leases("a", ROOMS, leases, ["a", "b"], allow_release=False)
    assert plan.acquire == ()


def test_takes_expired_rooms_and_rooms_of_dead_owners() -> None:
    leases = {
        "room0": lease("room0", "b", expires_in=-0.1),
        "room1": lease("room1", "dead", expires_in=4.0),
        "room2": lease("room2", "b"),
    }
    plan = plan_leases("a", ["room0", "room1", "room2"], leases, ["a", "b"], allow_release=False)
    assert sorted(plan.acquire) == ["room0", "room1"]


def test_over_share_releases_one_room_per_rebalance_only() -> None:
    leases = {r: lease(r, "a") for r in ROOMS}
    held = plan_leases("a", ROOMS, leases, ["a", "b", "c"], allow_release=False)
    assert held.release == ()
    assert len(held.renew) == 6
    step = plan_leases("a", ROOMS, leases, ["a", "b", "c"], allow_release=True)
    assert len(step.release) == 1
    assert len(step.renew) == 5
    assert step.acquire == ()


def test_instances_start_from_different_rooms() -> None:
    firsts = {plan_leases(me, ROOMS, {}, ["a", "b", "c"], allow_release=False).acquire[0] for me in "abc"}
    assert len(firsts) > 1


@pytest.mark.parametrize(
    ("renewed", "now", "leave"),
    [(0.0, 6.9, False), (0.0, 7.0, True), (10.0, 12.0, False), (10.0, 20.0, True)],
)
def test_must_leave_before_expiry(renewed: float, now: float, leave: bool) -> None:
    # lease 10 s, safety 3 s: leave at renewed + 7
    assert must_leave(renewed, now, lease_seconds=10.0, safety_seconds=3.0) is leave
