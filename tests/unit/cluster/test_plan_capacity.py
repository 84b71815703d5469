"""Placement by socket capacity (pure): shares fill each instance up to its cap on the room's server,
so no room waits while any instance has a free socket; when the cluster is full the rest wait with a
reason; a new instance takes the waiting rooms first."""

from __future__ import annotations

from daz.cluster.plan import LeaseView, plan_leases, waiting_rooms, water_level

ROOMS = [f"r{i:02d}" for i in range(25)]
SERVER = "fake:1"
SERVER_OF = dict.fromkeys(ROOMS, SERVER)
CAP10 = {SERVER: 10}


def settle(instances: list[str], leases: dict[str, LeaseView], caps: dict[str, dict[str, int]],
           *, allow_release: bool = False) -> dict[str, LeaseView]:
    """Run every instance's plan in turn until nothing changes (as their ticks would)."""
    for _ in range(20):
        changed = False
        for me in instances:
            plan = plan_leases(me, ROOMS, leases, instances, allow_release=allow_release,
                               server_of=SERVER_OF, capacity=caps)
            for room in plan.release:
                leases[room] = LeaseView(room, None, 0.0, leases[room].fence)
                changed = True
            for room in plan.acquire:
                fence = leases[room].fence + 1 if room in leases else 1
                leases[room] = LeaseView(room, me, 10.0, fence)
                changed = True
        if not changed:
            return leases
    raise AssertionError("the plans never settled")


def held(leases: dict[str, LeaseView]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for lease in leases.values():
        if lease.owner is not None:
            counts[lease.owner] = counts.get(lease.owner, 0) + 1
    return counts


def test_water_level_is_the_fair_share_without_caps_and_the_cap_when_full() -> None:
    assert water_level(25, [None, None, None]) == 9
    assert water_level(25, [10, 10, 10]) == 9
    assert water_level(25, [10, 10]) == 25  # cannot place them all: everyone up to its cap
    assert water_level(20, [10, 2, 10]) == 9  # the small one full, the others carry the rest


def test_three_instances_with_a_cap_of_ten_place_all_25_rooms() -> None:
    caps = dict.fromkeys(("a", "b", "c"), CAP10)
    leases = settle(["a", "b", "c"], {}, caps)
    assert sum(held(leases).values()) == 25
    assert max(held(leases).values()) <= 10
    assert waiting_rooms(ROOMS, leases, ["a", "b", "c"], SERVER_OF, caps) == {}


def test_two_instances_hold_20_and_five_wait_with_the_reason_then_a_third_takes_exactly_those() -> None:
    caps = dict.fromkeys(("a", "b"), CAP10)
    leases = settle(["a", "b"], {}, caps)
    assert held(leases) == {"a": 10, "b": 10}
    waiting = waiting_rooms(ROOMS, leases, ["a", "b"], SERVER_OF, caps)
    assert len(waiting) == 5
    assert all("cluster full on fake:1" in why and "20 socket(s)" in why for why in waiting.values())
    before = {room: lease.owner for room, lease in leases.items()}
    caps["c"] = CAP10
    leases = settle(["a", "b", "c"], dict(leases), caps)  # no rebalance tick yet
    assert sorted(r for r, lease in leases.items() if lease.owner == "c") == sorted(waiting)
    assert all(leases[room].owner == owner for room, owner in before.items())  # nobody moved


def test_a_small_instance_does_not_leave_rooms_waiting_while_others_have_sockets() -> None:
    caps = {"a": CAP10, "b": {SERVER: 2}, "c": CAP10}
    rooms20 = ROOMS[:20]
    leases: dict[str, LeaseView] = {}
    for _ in range(10):
        for me in ("a", "b", "c"):
            plan = plan_leases(me, rooms20, leases, ["a", "b", "c"], allow_release=False,
                               server_of=SERVER_OF, capacity=caps)
            for room in plan.acquire:
                leases[room] = LeaseView(room, me, 10.0, 1)
    assert held(leases) == {"a": 9, "b": 2, "c": 9}
