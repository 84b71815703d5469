"""Presence: fast failover from what PostgreSQL knows about dead sessions, without a double join.

Every instance holds a session-level advisory lock, keyed by (schema, instance id), on a dedicated
connection, and bumps its ``daz_instances.presence_epoch`` each time it takes the lock. When a
process dies (kill -9, OOM, power loss of the machine) its sockets close, its PostgreSQL session
ends and the lock disappears at once: the others see that in ``pg_locks`` within one presence
period instead of waiting for the lease to expire.

Why this cannot put two instances in one room. A lock can also disappear while its process still
runs: the server dropped the session (a TCP keepalive timeout during a partition,
``pg_terminate_backend``, a server restart) and the process may not have noticed. So the rule has
two halves, measured on each side's own monotonic clock (durations only, no clock comparison):

* The holder proves its presence with a query on the locked connection every
  ``presence_timeout / 4``; a query counts from the moment it was SENT. Its watchdog leaves every
  room once the last proof is ``presence_timeout`` old (a hung or lost connection; a closed one at
  once). A proof sent before the session ended is the latest one possible, so the holder is out of
  its rooms within ``presence_timeout + WATCHDOG_PERIOD + LEAVE_MARGIN`` of the session's end.
* A survivor treats an owner as gone only after seeing its lock missing, at the same epoch, for
  ``takeover_grace`` = that same bound, counted from the survivor's FIRST sighting (which is after
  the session ended). The take-over statement re-checks, atomically, that the lock is still
  missing and the epoch unchanged; an owner that re-locked in between has a new epoch, so a gap it
  filled is never mistaken for a continuous absence.

A partition where the server keeps the session alive leaves the lock in place: then nothing is
faster than before, and the lease rule (leave before the lease can expire) applies as it always
did. A paused process (SIGSTOP, a long GC) cannot run its watchdog; that caveat is the lease's too.
An instance without ``presence_epoch`` (an older version during an upgrade) is never judged by its
lock, only by its lease. The cost: an instance that cannot reach PostgreSQL for
``presence_timeout`` leaves its rooms (a database restart makes every instance leave and rejoin).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, LiteralString

LEAVE_MARGIN_SECONDS: Final = 0.5  # from the watchdog's decision to the room's socket closed


def takeover_grace(presence_timeout: float, watchdog_period: float) -> float:
    """How long a survivor must see an owner's lock missing before it may take the owner's rooms."""
    return presence_timeout + watchdog_period + LEAVE_MARGIN_SECONDS


# The lock's key: (hash of the schema, hash of the instance id), so test schemas never collide.
TRY_LOCK: Final[LiteralString] = (
    "SELECT pg_try_advisory_lock(hashtext(current_schema()), hashtext($1))"
)

# The backend holding our key (our own previous session, left behind by a partition that healed).
LOCK_HOLDER: Final[LiteralString] = """
SELECT pid FROM pg_locks
 WHERE locktype = 'advisory' AND granted AND objsubid = 2
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND classid = hashtext(current_schema())::oid AND objid = hashtext($1)::oid
"""

TERMINATE: Final[LiteralString] = "SELECT pg_terminate_backend($1)"

# Taken the lock: a new epoch, so survivors restart their count of its absence.
BUMP_EPOCH: Final[LiteralString] = """
INSERT INTO daz_instances (instance_id, hostname, pid, version, started_at, heartbeat_at, presence_epoch)
VALUES ($1, $2, $3, $4, now(), now(), 1)
ON CONFLICT (instance_id) DO UPDATE
   SET presence_epoch = coalesce(daz_instances.presence_epoch, 0) + 1, heartbeat_at = now()
RETURNING presence_epoch
"""

# The others' presence, read on the locked connection (so it also proves our own session alive).
OBSERVE: Final[LiteralString] = """
SELECT i.instance_id, i.presence_epoch,
       EXISTS (SELECT 1 FROM pg_locks k
                WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2
                  AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND k.classid = hashtext(current_schema())::oid
                  AND k.objid = hashtext(i.instance_id)::oid) AS present
  FROM daz_instances i
 WHERE i.presence_epoch IS NOT NULL AND i.instance_id <> $1
   AND i.heartbeat_at > now() - make_interval(secs => $2)
"""

@dataclass(frozen=True, slots=True)
class Sighting:
    instance_id: str
    epoch: int
    present: bool


@dataclass
class PresenceTracker:
    """The survivor's side, pure: which owners have had their lock missing long enough."""

    grace_seconds: float
    _missing: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (epoch, first seen)

    def observe(self, sightings: Iterable[Sighting], now: float) -> None:
        seen: set[str] = set()
        for s in sightings:
            seen.add(s.instance_id)
            if s.present:
                self._missing.pop(s.instance_id, None)
                continue
            known = self._missing.get(s.instance_id)
            if known is None or known[0] != s.epoch:
                self._missing[s.instance_id] = (s.epoch, now)
        for gone_from_table in set(self._missing) - seen:  # no heartbeat any more: the old rule applies
            del self._missing[gone_from_table]

    def gone(self, now: float) -> dict[str, int]:
        """Owner -> epoch, for every owner whose lock has been missing for ``grace_seconds``."""
        return {who: epoch for who, (epoch, since) in self._missing.items()
                if now - since >= self.grace_seconds}

    def missing(self) -> list[str]:
        return sorted(self._missing)


def presence_stale(last_proof_sent_at: float | None, now: float, presence_timeout: float) -> bool:
    """True once this instance can no longer prove its lock is held: leave every room."""
    return last_proof_sent_at is None or now - last_proof_sent_at >= presence_timeout
