"""Pure lease planning: which rooms this instance should take, keep or hand back.

No I/O here. The coordinator reads the lease table and the live instances, calls ``plan_leases`` and
then performs the plan. Fairness: an instance holds at most ``ceil(rooms / live instances)`` rooms;
when it holds more (a new instance joined), it gives back ONE room per rebalance step so rooms move
slowly and never all at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


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


def plan_leases(
    me: str,
    rooms: Sequence[str],
    leases: Mapping[str, LeaseView],
    live_instances: Iterable[str],
    *,
    allow_release: bool,
) -> LeasePlan:
    """Decide this instance's next step.

    - keep (renew) every room it holds, up to its fair share;
    - take free or expired rooms (or rooms whose owner is no longer alive) while under its share;
    - when over its share and ``allow_release`` (a rebalance tick), release exactly one room.
    Rooms are considered in a stable order so that instances do not race for the same room.
    """
    live = set(live_instances) | {me}
    share = fair_share(len(rooms), len(live))
    mine = sorted(r for r in rooms if _held_by(leases.get(r), me))
    release: list[str] = []
    if len(mine) > share and allow_release:
        release.append(mine[-1])
    keep = [r for r in mine if r not in release]
    acquire: list[str] = []
    room_count_after = len(keep)
    for room in _stable_order(rooms, me):
        if room_count_after >= share:
            break
        lease = leases.get(room)
        if _held_by(lease, me):
            continue
        if lease is None or lease.owner is None or lease.expires_in <= 0 or lease.owner not in live:
            acquire.append(room)
            room_count_after += 1
    return LeasePlan(acquire=tuple(acquire), renew=tuple(keep), release=tuple(release), fair_share=share)


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
