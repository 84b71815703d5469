"""The room state machine and every decision the supervisor makes, as pure functions.

Nothing here sleeps, reads a clock or does I/O: callers pass ``now`` and the facts, and tests
drive the decisions directly (and through the supervisor with ``FakeClock``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from daz.backoff import delay_for
from daz.config import BackoffConfig, ProbeConfig
from daz.errors import IllegalTransition

FATAL_KICK_REASONS = frozenset({"Duplicate login"})


class RoomState(Enum):
    DISCONNECTED = "disconnected"
    DISCOVERING = "discovering"
    # The server's socket cap is full with our own rooms: no attempt until a slot frees.
    PARKED = "parked"
    # Holding a socket slot, waiting for a connection token or for the guest-login window.
    WAITING = "waiting"
    CONNECTING = "connecting"
    JOINING = "joining"
    READY = "ready"
    BACKING_OFF = "backing_off"
    KICKED = "kicked"
    # Stopped with a reason (wrong password, ban, operator): only a slow retry or a restart leaves it.
    STOPPED = "stopped"
    CLOSED = "closed"


_S = RoomState
TRANSITIONS: dict[RoomState, frozenset[RoomState]] = {
    _S.DISCONNECTED: frozenset({_S.DISCOVERING, _S.STOPPED, _S.CLOSED}),
    _S.DISCOVERING: frozenset(
        {_S.PARKED, _S.WAITING, _S.CONNECTING, _S.BACKING_OFF, _S.STOPPED, _S.CLOSED}
    ),
    # BACKING_OFF from PARKED/WAITING: a reconnect request cuts the wait (with no delay).
    _S.PARKED: frozenset(
        {_S.WAITING, _S.CONNECTING, _S.DISCOVERING, _S.BACKING_OFF, _S.STOPPED, _S.CLOSED}
    ),
    _S.WAITING: frozenset(
        {_S.WAITING, _S.CONNECTING, _S.DISCOVERING, _S.BACKING_OFF, _S.STOPPED, _S.CLOSED}
    ),
    _S.CONNECTING: frozenset({_S.JOINING, _S.BACKING_OFF, _S.PARKED, _S.STOPPED, _S.CLOSED}),
    _S.JOINING: frozenset(
        {_S.READY, _S.BACKING_OFF, _S.KICKED, _S.PARKED, _S.STOPPED, _S.CLOSED}
    ),
    _S.READY: frozenset({_S.BACKING_OFF, _S.KICKED, _S.PARKED, _S.STOPPED, _S.CLOSED}),
    _S.BACKING_OFF: frozenset({_S.DISCOVERING, _S.STOPPED, _S.CLOSED}),
    # A kicked room waits for an operator (``reconnect``); it never fights for the account itself.
    _S.KICKED: frozenset({_S.DISCOVERING, _S.STOPPED, _S.CLOSED}),
    _S.STOPPED: frozenset({_S.DISCOVERING, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}


def check_transition(current: RoomState, target: RoomState) -> None:
    """Raise ``IllegalTransition`` unless the table allows ``current → target``."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"room state {current.value} → {target.value} is not allowed")


def reconnect_delay(
    attempt: int,
    rng: random.Random,
    backoff: BackoffConfig,
    *,
    rate_limited: bool = False,
    rate_limit_min_wait: float = 10.0,
    previous: float | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1``; a ``Rate limit exceeded`` refusal waits longer."""
    delay = delay_for(
        backoff.strategy, attempt, rng, base=backoff.base_seconds, multiplier=backoff.multiplier,
        cap=backoff.max_seconds, jitter=backoff.jitter, previous=previous,
    )
    return max(delay, rate_limit_min_wait) if rate_limited else delay


def probe_delay(probe_number: int, rng: random.Random, probe: ProbeConfig) -> float:
    """Wait before reachability probe ``probe_number`` (0-based): grows to a cap, jittered in [½, 1]."""
    ceiling = min(probe.interval_seconds * (2 ** min(probe_number, 16)), probe.max_interval_seconds)
    return rng.uniform(ceiling / 2, ceiling)


def is_fatal_kick(reason: str) -> bool:
    """A kick after which reconnecting would only fight another client for the account."""
    return reason in FATAL_KICK_REASONS


def is_stable(ready_since: float | None, now: float, stable_after: float) -> bool:
    """Whether a READY session has lasted long enough to reset the attempt counter."""
    return ready_since is not None and now - ready_since >= stable_after


def record_flap(
    flaps: tuple[float, ...], now: float, ready_for: float, stable_after: float, window: float
) -> tuple[float, ...]:
    """Flap times inside ``window`` after a READY session ended having lasted ``ready_for`` seconds."""
    kept = tuple(t for t in flaps if now - t <= window)
    return (*kept, now) if ready_for < stable_after else kept


def is_degraded(flaps: tuple[float, ...], now: float, window: float, threshold: int) -> bool:
    return sum(1 for t in flaps if now - t <= window) >= threshold


class Liveness(Enum):
    ALIVE = "alive"
    MEDIA_STALE = "media_stale"  # media updates overdue, but frames still arrive: report, keep going
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class LivenessVerdict:
    kind: Liveness
    reason: str
    frame_age: float | None


def liveness(
    now: float,
    *,
    last_frame_at: float | None,
    ping_interval: float | None,
    ping_timeout: float | None,
    margin: float,
    media_playing: bool,
    last_media_update_at: float | None,
    media_timeout: float,
) -> LivenessVerdict:
    """CyTube's liveness rule, with the media-update timeout as a stricter, confirmed variant.

    Dead: no frame at all (PINGs included) for pingInterval + pingTimeout + margin. The media
    timeout applies only while a non-live item plays unpaused; it alone never tears a connection
    down: it is confirmed only when a server PING is also overdue (no frame for pingInterval +
    margin), which is far sooner than the plain rule would notice.
    """
    age = None if last_frame_at is None else max(0.0, now - last_frame_at)
    if age is None or ping_interval is None or ping_timeout is None:
        return LivenessVerdict(Liveness.ALIVE, "no handshake yet", age)
    if age > ping_interval + ping_timeout + margin:
        return LivenessVerdict(Liveness.DEAD, "no_frames", age)
    if media_playing and last_media_update_at is not None and now - last_media_update_at > media_timeout:
        if age > ping_interval + margin:
            return LivenessVerdict(Liveness.DEAD, "media_timeout", age)
        return LivenessVerdict(Liveness.MEDIA_STALE, "media updates overdue; pings still arrive", age)
    return LivenessVerdict(Liveness.ALIVE, "ok", age)


def ping_overdue(
    now: float,
    *,
    last_ping_at: float | None,
    connected_at: float | None,
    ping_interval: float | None,
    grace: float,
) -> float | None:
    """Seconds a server PING is overdue past ``pingInterval + grace``, or None while it is not.

    CyTube PINGs every pingInterval (25 s); a black-holed link shows first as a PING that does not
    come. Before the first PING the interval counts from the handshake. A suspect link is replaced
    at once rather than after pingTimeout (120 s) more.
    """
    since = last_ping_at if last_ping_at is not None else connected_at
    if since is None or ping_interval is None:
        return None
    late = now - since - ping_interval - grace
    return late if late > 0 else None
