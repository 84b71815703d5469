"""Waiting for a server's permission: socket slots, guest-login turns and connection tokens.

``Admission`` holds one ``ServerGate`` per CyTube server (keyed ``host:port``); each gate wraps the
pure ``ServerLedger`` (``daz.cytube.scheduler``) and lets a room wait until the ledger grants what it
asked for. Nothing runs in the background: every waiter sleeps until the ledger's next change (a
token refills, a ghost socket expires, the guest window ends) or until another room's release wakes
it, and whoever wakes first hands out what is due, best priority first. Waits are plain awaitables
the supervisor races against ``stop`` and ``wake``; a cancelled wait withdraws its request (and gives
back a token it was granted but never used).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from daz.aio import race
from daz.clock import Clock
from daz.config import CytubeConfig
from daz.cytube.scheduler import Priority, ServerCapacity, ServerLedger, server_key
from daz.metrics import DazMetrics


class ServerGate:
    def __init__(self, ledger: ServerLedger, clock: Clock, metrics: DazMetrics | None = None) -> None:
        self.ledger = ledger
        self.key = ledger.key
        self._clock = clock
        self._metrics = metrics
        self._pulse = asyncio.Event()
        self._back = asyncio.Event()
        self._tokens: set[str] = set()

    # queries ---------------------------------------------------------------------------------
    def holds(self, room: str) -> bool:
        return room in self.ledger.holders

    def parked_reason(self) -> str:
        return self.ledger.parked_reason(self._clock.monotonic())

    def guest_wait(self) -> float:
        """Seconds until the guest-login window since our last guest login has passed."""
        return max(0.0, self.ledger.guest_ready_at() - self._clock.monotonic())

    def token_wait(self) -> float:
        now = self._clock.monotonic()
        return max(0.0, self.ledger.bucket.ready_at(now) - now)

    def capacity(self) -> ServerCapacity:
        return self.ledger.capacity(self._clock.monotonic())

    # socket slots ----------------------------------------------------------------------------
    def try_slot(self, room: str, prio: Priority) -> bool:
        """Take a slot now if one is free and nobody better waits; never waits. On False the
        request stays queued for ``slot`` (which withdraws it if its wait is called off)."""
        self.ledger.want_slot(room, prio)
        self._dispatch()
        return self.holds(room)

    async def slot(self, room: str, prio: Priority) -> None:
        """Wait until ``room`` holds a socket slot (it keeps it until ``release``)."""
        self.ledger.want_slot(room, prio)
        try:
            await self._until(lambda: self.holds(room))
        finally:
            if not self.holds(room):
                self.ledger.withdraw_slot(room)
                self._publish()

    def release(self, room: str, *, ghost_until: float | None = None) -> None:
        self.ledger.release(room, ghost_until=ghost_until)
        self._dispatch()

    def socket_cap_hit(self, room: str) -> None:
        self.ledger.socket_cap_hit(room, self._clock.monotonic())
        self._dispatch()

    # guest-login turns -----------------------------------------------------------------------
    async def guest_turn(self, room: str, prio: Priority) -> None:
        """Wait until ``room`` may log in as a guest (one at a time, window respected)."""
        self.ledger.want_guest_turn(room, prio)
        try:
            await self._until(lambda: self.ledger.guest_turn == room)
        finally:
            if self.ledger.guest_turn != room:
                self.ledger.withdraw_guest_turn(room)

    def has_guest_turn(self, room: str) -> bool:
        return self.ledger.guest_turn == room

    def guest_done(self, room: str, *, logged_in: bool) -> None:
        self.ledger.guest_done(room, self._clock.monotonic(), logged_in=logged_in)
        self._dispatch()

    def guest_refused(self) -> None:
        self.ledger.guest_refused(self._clock.monotonic())

    # connection tokens -----------------------------------------------------------------------
    async def token(self, room: str, prio: Priority) -> None:
        """Wait for a connection token; the caller then connects at once."""
        self.ledger.want_token(room, prio)
        try:
            await self._until(lambda: room in self._tokens)
            self._tokens.discard(room)
        finally:
            self.ledger.withdraw_token(room)
            if room in self._tokens:  # granted, then called off before it was used
                self._tokens.discard(room)
                self.ledger.returned(self._clock.monotonic())

    def rate_limited(self) -> None:
        self.ledger.rate_limited(self._clock.monotonic())

    def unreached(self) -> None:
        self.ledger.unreached(self._clock.monotonic())
        self._dispatch()

    def server_down(self) -> None:
        self.ledger.server_down()

    def connected(self) -> None:
        if self.ledger.connected(self._clock.monotonic()):
            self._announce_back()
        self._dispatch()

    def reachable(self) -> None:
        """A room's probe reached the server: if it was down, every room may try now."""
        if self.ledger.came_back(self._clock.monotonic()):
            self._announce_back()
            self._dispatch()

    def _announce_back(self) -> None:
        back, self._back = self._back, asyncio.Event()
        back.set()  # rooms backing off after the outage need not wait out their backoff

    async def server_back(self) -> None:
        """Returns when a connection to this server succeeds after it was unreachable."""
        await self._back.wait()

    def attempt_failed(self) -> None:
        self.ledger.attempt_failed()

    # internals -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        now = self._clock.monotonic()
        granted = bool(self.ledger.grant_slots(now))
        granted |= self.ledger.grant_guest_turn(now) is not None
        tokens = self.ledger.grant_tokens(now)
        self._tokens.update(tokens)
        if granted or tokens:
            pulse, self._pulse = self._pulse, asyncio.Event()
            pulse.set()
        self._publish()

    async def _until(self, done: Callable[[], bool]) -> None:
        while True:
            self._dispatch()
            if done():
                return
            pulse = self._pulse
            now = self._clock.monotonic()
            at = self.ledger.next_change_at(now)
            if at is None:
                await pulse.wait()
            else:
                wait = at - now
                await race(
                    {"pulse": pulse.wait, "timer": lambda: self._clock.sleep(wait)},  # noqa: B023 - awaited in this iteration
                    label=f"admission.{self.key}",
                )

    def _publish(self) -> None:
        if self._metrics is None:
            return
        cap = self.ledger.capacity(self._clock.monotonic())
        self._metrics.server_sockets.labels(server=self.key).set(cap.in_use)
        self._metrics.server_socket_cap.labels(server=self.key).set(cap.cap)
        self._metrics.server_parked_rooms.labels(server=self.key).set(len(cap.parked))


class Admission:
    """Every server's gate, created on first use from ``cytube.servers`` (``default`` otherwise)."""

    def __init__(self, config: CytubeConfig, clock: Clock, metrics: DazMetrics | None = None) -> None:
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self._gates: dict[str, ServerGate] = {}

    def gate(self, url: str) -> ServerGate:
        key = server_key(url)
        gate = self._gates.get(key)
        if gate is None:
            ledger = ServerLedger.new(key, self._config.server_limits(key), self._clock.monotonic())
            gate = self._gates[key] = ServerGate(ledger, self._clock, self._metrics)
        return gate

    def capacities(self) -> list[ServerCapacity]:
        """Per server: cap, sockets in use, parked rooms (``ServerCapacity``), sorted by server."""
        return [self._gates[key].capacity() for key in sorted(self._gates)]
