"""Pure lease planning: which rooms this instance should take, keep or hand back.

No I/O here. The coordinator reads the lease table and the live instances, calls ``plan_leases`` and
then performs the plan. Fairness: an instance holds at most ``ceil(rooms / live instances)`` rooms;
when it holds more (a new instance joined), it gives back ONE room per rebalance step so rooms move
slowly and never all at once.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_SERVER = "default"  # rooms whose server is not known in advance (found by discovery)


@dataclass(frozen=True, slots=True)
class LeaseView:
    """One row of ``daz_room_leases`` as seen at one moment (times in seconds on the database clock)."""

    room: str
    owner: str | None
    expires_in: float  # lease_until - db now; <= 0 means expired
    fence: int


@dataclass(frozen=True, slots=True)
class LeasePlan:
    acquire: tuple[str, ...]
    renew: tuple[str, ...]
    release: tuple[str, ...]
    fair_share: int


def fair_share(room_count: int, live_instances: int) -> int:
    if room_count == 0:
        return 0
    return math.ceil(room_count / max(1, live_instances))


def water_level(room_count: int, caps: Iterable[int | None]) -> int:
    """The fewest rooms per instance that place ``room_count`` rooms when instance i holds at most
    ``caps[i]`` (None: no cap): each instance's share is ``min(cap, level)``. Without caps this is
    ``fair_share``; when the caps cannot hold every room, every instance is filled to its cap."""
    limits = list(caps)
    if room_count == 0 or not limits:
        return 0
    for level in range(1, room_count + 1):
        if sum(level if cap is None else min(cap, level) for cap in limits) >= room_count:
            return level
    return room_count


def capacity_shares(
    rooms: Sequence[str], live: Iterable[str], server_of: Mapping[str, str],
    capacity: Mapping[str, Mapping[str, int]],
) -> dict[str, dict[str, int]]:
    """Per server, per live instance: how many of that server's rooms the instance should hold."""
    live_sorted = sorted(set(live))
    by_server: dict[str, int] = {}
    for room in rooms:
        server = server_of.get(room, DEFAULT_SERVER)
        by_server[server] = by_server.get(server, 0) + 1
    shares: dict[str, dict[str, int]] = {}
    for server, count in by_server.items():
        caps = {i: capacity.get(i, {}).get(server) for i in live_sorted}
        level = water_level(count, caps.values())
        shares[server] = {i: level if cap is None else min(cap, level) for i, cap in caps.items()}
    return shares


def waiting_rooms(
    rooms: Sequence[str], leases: Mapping[str, LeaseView], live: Iterable[str],
    server_of: Mapping[str, str], capacity: Mapping[str, Mapping[str, int]],
) -> dict[str, str]:
    """Rooms no live instance holds because every live instance is at its socket cap on the room's
    server, each with the reason (for the status page and health)."""
    live_set = set(live)
    shares = capacity_shares(rooms, live_set, server_of, capacity)
    on_server = Counter(server_of.get(room, DEFAULT_SERVER) for room in rooms)
    # Once per server: why its unheld rooms wait (absent: the caps there hold every room, or some
    # live instance has no cap there).
    full: dict[str, str] = {}
    for server, count in on_server.items():
        total = sum(shares[server].values())
        if total < count and all(capacity.get(i, {}).get(server) is not None for i in live_set):
            full[server] = (f"cluster full on {server}: {len(live_set)} instance(s) hold at most "
                            f"{total} socket(s) there for {count} rooms; start another instance")
    waiting: dict[str, str] = {}
    for room in rooms:
        why = full.get(server_of.get(room, DEFAULT_SERVER))
        lease = leases.get(room)
        if why is None or (lease is not None and lease.owner in live_set and lease.expires_in > 0):
            continue
        waiting[room] = why
    return waiting


def plan_leases(
    me: str,
    rooms: Sequence[str],
    leases: Mapping[str, LeaseView],
    live_instances: Iterable[str],
    *,
    allow_release: bool,
    server_of: Mapping[str, str] | None = None,
    capacity: Mapping[str, Mapping[str, int]] | None = None,
) -> LeasePlan:
    """Decide this instance's next step.

    - keep (renew) every room it holds, up to its share;
    - take free or expired rooms (or rooms whose owner is no longer alive) while under its share;
    - when over its share and ``allow_release`` (a rebalance tick), release exactly one room.
    Shares are per CyTube server (``server_of``; one server when not given) and respect each live
    instance's socket cap there (``capacity``: instance -> server -> cap, as published in the
    heartbeats; an instance without one has no cap): water-filling, so no room waits while any
    instance has a free socket on its server. Without caps the share is ``fair_share``.
    Rooms are considered in a stable order so that instances do not race for the same room.
    """
    live = set(live_instances) | {me}
    servers = server_of or {}
    shares = capacity_shares(rooms, live, servers, capacity or {})
    total_share = sum(per[me] for per in shares.values())
    mine = sorted(r for r in rooms if _held_by(leases.get(r), me))
    count: dict[str, int] = {}
    for room in mine:
        server = servers.get(room, DEFAULT_SERVER)
        count[server] = count.get(server, 0) + 1
    release: list[str] = []
    # Hand rooms back for fairness only once every room has a live holder: a room waiting for a
    # socket is placed first (on the new instance) instead of moving rooms that are fine.
    unplaced = any(_free(leases.get(r), live) for r in rooms)
    if allow_release and not unplaced:
        for room in reversed(mine):
            server = servers.get(room, DEFAULT_SERVER)
            if count[server] > shares[server][me]:
                release.append(room)
                count[server] -= 1
                break
    keep = [r for r in mine if r not in release]
    acquire: list[str] = []
    for room in _stable_order(rooms, me):
        lease = leases.get(room)
        if _held_by(lease, me):
            continue
        server = servers.get(room, DEFAULT_SERVER)
        if count.get(server, 0) >= shares[server][me]:
            continue
        if _free(lease, live):
            acquire.append(room)
            count[server] = count.get(server, 0) + 1
    return LeasePlan(acquire=tuple(acquire), renew=tuple(keep), release=tuple(release),
                     fair_share=total_share)


def _free(lease: LeaseView | None, live: set[str]) -> bool:
    return lease is None or lease.owner is None or lease.expires_in <= 0 or lease.owner not in live


def _held_by(lease: LeaseView | None, owner: str) -> bool:
    return lease is not None and lease.owner == owner and lease.expires_in > 0


def _stable_order(rooms: Sequence[str], me: str) -> list[str]:
    """Each instance walks the rooms from a different starting point, spreading first claims."""
    ordered = sorted(rooms)
    if not ordered:
        return ordered
    start = sum(me.encode()) % len(ordered)
    return ordered[start:] + ordered[:start]


def must_leave(last_renewed_at: float, now: float, lease_seconds: float, safety_seconds: float) -> bool:
    """True once a held room can no longer be proven ours: leave BEFORE the lease can expire.

    ``last_renewed_at`` is the local monotonic time at which the last successful renew was SENT;
    the database set ``lease_until = db_now + lease`` no earlier than that, so local
    ``last_renewed_at + lease`` is a safe lower bound of the expiry, whatever the clock skew.
    """
    return now >= last_renewed_at + lease_seconds - safety_seconds


def capacities_from_heartbeats(
    live_rows: Iterable[Mapping[str, Any]], live: Iterable[str]
) -> dict[str, dict[str, int]]:
    """instance -> server -> socket cap, from the heartbeats (an instance that published none: no cap)."""
    keep = set(live)
    found: dict[str, dict[str, int]] = {}
    for row in live_rows:
        raw = row.get("capacity")
        if row["instance_id"] not in keep or not raw:
            continue
        try:
            decoded = json.loads(str(raw))
        except ValueError:
            continue
        if isinstance(decoded, dict):
            found[str(row["instance_id"])] = {str(k): int(v) for k, v in decoded.items()
                                              if isinstance(v, int) and v >= 0}
    return found
