"""Per-server admission, pure: the connection token bucket, the socket cap and the guest-login turn.

CyTube limits every client address: a bucket of connection tokens (5, one back per 10 s; past it
``Rate limit exceeded``), a cap on concurrent sockets (10; past it a kick), and one successful guest
login per 60 s. Every room on one server draws from one ``ServerLedger`` that mirrors those limits,
so no attempt is made that the server would refuse. Priority decides who goes first when several
rooms wait: rooms that were READY before, then configuration order (``Priority``).

Nothing here sleeps or reads a clock: callers pass ``now`` (``Clock.monotonic()``); the waiting is
done by ``daz.cytube.admission``. Tested with plain numbers in tests/unit/cytube/test_scheduler.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from daz.config import ServerLimitsConfig

Priority = tuple[int, int]
"""``(0 if the room was READY before else 1, its index in the configuration)``: lower goes first."""


def server_key(url: str) -> str:
    """``https://Cytu.be`` → ``cytu.be:443``: one ledger per Socket.IO host and port."""
    parts = urlsplit(url)
    host = (parts.hostname or url).lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme in ("https", "wss") else 80
    return f"{host}:{port}"


def priority(was_ready: bool, index: int) -> Priority:
    return (0 if was_ready else 1, index)


@dataclass
class TokenBucket:
    """The server's connection bucket as we believe it is: full at start, refilled continuously."""

    size: int
    refill_seconds: float
    margin_seconds: float
    tokens: float
    updated_at: float
    hold_until: float = -math.inf

    @classmethod
    def full(cls, limits: ServerLimitsConfig, now: float) -> TokenBucket:
        return cls(
            size=limits.connection_burst, refill_seconds=limits.connection_refill_seconds,
            margin_seconds=limits.token_margin_seconds, tokens=float(limits.connection_burst),
            updated_at=now,
        )

    def _update(self, now: float) -> None:
        if now > self.updated_at:
            self.tokens = min(float(self.size), self.tokens + (now - self.updated_at) / self.refill_seconds)
            self.updated_at = now

    def available(self, now: float) -> float:
        self._update(now)
        return self.tokens

    def ready(self, now: float) -> bool:
        self._update(now)
        return self.tokens >= 1.0 - 1e-9 and now >= self.hold_until

    def ready_at(self, now: float) -> float:
        """When ``ready`` becomes true (``now`` if it is)."""
        self._update(now)
        missing = 1.0 - self.tokens
        at = now if missing <= 1e-9 else now + missing * self.refill_seconds
        return max(at, self.hold_until)

    def _hold_if_empty(self, now: float) -> None:
        # A token that has to refill is used margin_seconds after it accrued: an attempt whose
        # packets travel faster than an earlier one's must still find the server's token there.
        if self.tokens < 1.0 - 1e-9:
            self.hold_until = now + (1.0 - self.tokens) * self.refill_seconds + self.margin_seconds

    def take(self, now: float) -> None:
        self._update(now)
        self.tokens -= 1.0
        self._hold_if_empty(now)

    def give_back(self, now: float) -> None:
        """A token taken but not used for a connection (the attempt was called off)."""
        self._update(now)
        self.tokens = min(float(self.size), self.tokens + 1.0)
        if self.tokens >= 1.0 - 1e-9:
            self.hold_until = -math.inf

    def refill(self, now: float, *, in_use: int) -> None:
        """The server restarted: its bucket is full again, minus ``in_use`` tokens already on their way."""
        self.tokens = float(max(0, self.size - in_use))
        self.updated_at = now
        self.hold_until = -math.inf
        self._hold_if_empty(now)

    def drain(self, now: float) -> None:
        """The server said ``Rate limit exceeded``: its bucket is empty, so ours is too."""
        self._update(now)
        self.tokens = min(self.tokens, 0.0)
        self._hold_if_empty(now)


@dataclass(frozen=True, slots=True)
class ServerCapacity:
    """One server's sockets as daz sees them (status page, health, metrics, cluster placement)."""

    server: str  # "host:port"
    max_sockets: int  # configured cap (CyTube's ip-connection-limit)
    cap: int  # the cap in force: lower than max_sockets after a "Too many connections" kick
    in_use: int  # sockets held by our rooms, plus dead ones the server has not dropped yet
    ghosts: int  # of in_use: suspect sockets we abandoned that the server may still count
    parked: tuple[str, ...]  # rooms waiting for a slot, in the order they will get one
    tokens: float  # connection tokens we believe the server has for us
    next_token_in: float | None  # seconds until the next token is usable (None: one is now)

    @property
    def free(self) -> int:
        return max(0, self.cap - self.in_use)


@dataclass
class ServerLedger:
    """Everything one server lets this address do, and who waits for what. Pure and synchronous."""

    key: str
    limits: ServerLimitsConfig
    bucket: TokenBucket
    holders: set[str] = field(default_factory=set)
    ghosts: list[float] = field(default_factory=list)  # expiry times of abandoned suspect sockets
    learned_cap: int | None = None
    learned_until: float = -math.inf
    slot_waiters: dict[str, Priority] = field(default_factory=dict)
    token_waiters: dict[str, Priority] = field(default_factory=dict)
    guest_waiters: dict[str, Priority] = field(default_factory=dict)
    guest_turn: str | None = None
    last_guest_login: float | None = None
    in_flight: int = 0  # tokens handed out whose connection attempt has not finished
    down_seen: bool = False

    @classmethod
    def new(cls, key: str, limits: ServerLimitsConfig, now: float) -> ServerLedger:
        return cls(key=key, limits=limits, bucket=TokenBucket.full(limits, now))

    # sockets ---------------------------------------------------------------------------------
    def cap(self, now: float) -> int:
        if self.learned_cap is not None and now < self.learned_until:
            return min(self.limits.max_sockets, self.learned_cap)
        self.learned_cap = None
        return self.limits.max_sockets

    def in_use(self, now: float) -> int:
        self.ghosts = [t for t in self.ghosts if t > now]
        return len(self.holders) + len(self.ghosts)

    def want_slot(self, room: str, prio: Priority) -> None:
        if room not in self.holders:
            self.slot_waiters[room] = prio

    def withdraw_slot(self, room: str) -> None:
        self.slot_waiters.pop(room, None)

    def grant_slots(self, now: float) -> list[str]:
        """Hand free slots to waiting rooms, best priority first; returns the rooms granted."""
        granted: list[str] = []
        while self.slot_waiters and self.in_use(now) < self.cap(now):
            room = min(self.slot_waiters, key=self.slot_waiters.__getitem__)
            del self.slot_waiters[room]
            self.holders.add(room)
            granted.append(room)
        return granted

    def release(self, room: str, *, ghost_until: float | None = None) -> None:
        """``room`` gives its slot back; a suspect socket keeps counting until ``ghost_until``."""
        if room in self.holders:
            self.holders.discard(room)
            if ghost_until is not None:
                self.ghosts.append(ghost_until)

    def socket_cap_hit(self, room: str, now: float) -> None:
        """The server kicked ``room`` with ``Too many connections``: someone else holds slots too."""
        self.release(room)
        self.learned_cap = max(0, self.in_use(now))
        self.learned_until = now + self.limits.socket_cap_recheck_seconds

    def parked_reason(self, now: float) -> str:
        waiting = len(self.slot_waiters)
        rooms = f"{waiting} room{'s' if waiting != 1 else ''} waiting"
        cap = self.cap(now)
        if cap < self.limits.max_sockets:
            return (
                f"server refused a socket with {cap} of ours open (Too many connections from this "
                f"address); {rooms}"
            )
        return f"server allows {self.limits.max_sockets} connections from this address; {rooms}"

    # connection tokens ----------------------------------------------------------------------
    def want_token(self, room: str, prio: Priority) -> None:
        self.token_waiters[room] = prio

    def withdraw_token(self, room: str) -> None:
        self.token_waiters.pop(room, None)

    def grant_tokens(self, now: float) -> list[str]:
        granted: list[str] = []
        while self.token_waiters and self.bucket.ready(now):
            room = min(self.token_waiters, key=self.token_waiters.__getitem__)
            del self.token_waiters[room]
            self.bucket.take(now)
            self.in_flight += 1
            granted.append(room)
        return granted

    def rate_limited(self, now: float) -> None:
        self.bucket.drain(now)

    def returned(self, now: float) -> None:
        """A token handed out but never used for a connection attempt."""
        self.in_flight = max(0, self.in_flight - 1)
        self.bucket.give_back(now)

    def unreached(self, now: float) -> None:
        """An attempt never reached the server's Socket.IO layer: it cost the server no token, and
        the server process may be restarting."""
        self.returned(now)
        self.down_seen = True

    def attempt_failed(self) -> None:
        """An attempt ended otherwise (refused, timed out, called off): the token counts as spent."""
        self.in_flight = max(0, self.in_flight - 1)

    def server_down(self) -> None:
        """The server did not answer at all (discovery or probe failed): it may come back as a new
        process."""
        self.down_seen = True

    def connected(self, now: float) -> bool:
        """A connection was accepted; returns whether the server came back (see ``came_back``)."""
        back = self.came_back(now)
        self.in_flight = max(0, self.in_flight - 1)
        return back

    def came_back(self, now: float) -> bool:
        """The server answers again (a probe or a connection) after it was seen unreachable (refused
        connections or failed probes): taken as a new server process. CyTube forgets its buckets
        and guest windows on restart, so ours start fresh too, minus the attempts already on their
        way. Returns whether that happened (so rooms still backing off may try now)."""
        if not self.down_seen:
            return False
        self.down_seen = False
        self.last_guest_login = None
        self.bucket.refill(now, in_use=self.in_flight)
        return True

    # guest logins ----------------------------------------------------------------------------
    def guest_ready_at(self) -> float:
        if self.last_guest_login is None:
            return -math.inf
        return self.last_guest_login + self.limits.guest_login_window_seconds

    def want_guest_turn(self, room: str, prio: Priority) -> None:
        if self.guest_turn != room:
            self.guest_waiters[room] = prio

    def withdraw_guest_turn(self, room: str) -> None:
        self.guest_waiters.pop(room, None)

    def grant_guest_turn(self, now: float) -> str | None:
        """One guest login at a time, and only once the window since the last one has passed."""
        if self.guest_turn is not None or not self.guest_waiters or now < self.guest_ready_at():
            return None
        room = min(self.guest_waiters, key=self.guest_waiters.__getitem__)
        del self.guest_waiters[room]
        self.guest_turn = room
        return room

    def guest_done(self, room: str, now: float, *, logged_in: bool) -> None:
        if logged_in:
            self.last_guest_login = now
        if self.guest_turn == room:
            self.guest_turn = None

    def guest_refused(self, now: float) -> None:
        """Refused by the window anyway (another process, or our restart): wait a whole window."""
        self.last_guest_login = now

    # time ------------------------------------------------------------------------------------
    def next_change_at(self, now: float) -> float | None:
        """The next time a wait may end without anyone acting (a token, a ghost, a window)."""
        times: list[float] = []
        if self.token_waiters:
            times.append(self.bucket.ready_at(now))
        if self.slot_waiters:
            times.extend(self.ghosts)
            if self.learned_cap is not None:
                times.append(self.learned_until)
        if self.guest_waiters and self.guest_turn is None:
            times.append(self.guest_ready_at())
        future = [t for t in times if t > now]
        return min(future) if future else None

    def capacity(self, now: float) -> ServerCapacity:
        in_use = self.in_use(now)
        ready_at = self.bucket.ready_at(now)
        return ServerCapacity(
            server=self.key,
            max_sockets=self.limits.max_sockets,
            cap=self.cap(now),
            in_use=in_use,
            ghosts=len(self.ghosts),
            parked=tuple(sorted(self.slot_waiters, key=self.slot_waiters.__getitem__)),
            tokens=round(self.bucket.available(now), 3),
            next_token_in=None if ready_at <= now else round(ready_at - now, 3),
        )
