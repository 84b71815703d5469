"""The ``Transport`` protocol: one Socket.IO connection, seen as a stream of inbound items.

The session and supervisor never touch python-socketio directly. They read ``Inbound`` items in
arrival order (server events, frames that could not be decoded, and one final ``Closed``), emit
events, and read the liveness facts the supervisor needs: when the last frame of any kind (including
Engine.IO PINGs) arrived, and the ping interval/timeout the server announced in its handshake.
``daz.testing.FakeTransport`` implements the same protocol for deterministic tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from daz.clock import Clock
from daz.errors import TransportError


@dataclass(frozen=True, slots=True)
class WireEvent:
    """A server event: its name and its single JSON argument (``None`` when it had none)."""

    name: str
    data: Any


@dataclass(frozen=True, slots=True)
class WireMalformed:
    """A frame that reached us but could not be decoded as a Socket.IO event."""

    event: str
    size: int
    detail: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection ended; ``error`` keeps the server's reason (``kick`` reasons included)."""

    error: TransportError


Inbound = WireEvent | WireMalformed | Closed


class Transport(Protocol):
    """One connection attempt. Not reusable: make a new one (``TransportFactory``) per connect."""

    @property
    def ping_interval(self) -> float | None:
        """Seconds between server PINGs, from the handshake (``None`` before connecting)."""
        ...

    @property
    def ping_timeout(self) -> float | None:
        """Seconds the server allows on top of the interval, from the handshake."""
        ...

    @property
    def last_frame_at(self) -> float | None:
        """``Clock.monotonic()`` of the last frame of any kind received (PINGs included)."""
        ...

    @property
    def last_ping_at(self) -> float | None:
        """``Clock.monotonic()`` of the last Engine.IO PING from the server (``None`` before one came)."""
        ...

    async def connect(self, url: str, *, timeout: float) -> None:
        """Open the connection; raises ``ConnectFailed`` / ``RateLimited`` (with the server's reason)."""
        ...

    async def emit(self, event: str, data: Any) -> None:
        """Send one event with one JSON argument; raises ``NotConnected`` when the link is down."""
        ...

    async def receive(self) -> Inbound:
        """The next inbound item, in arrival order; after ``Closed`` it keeps returning ``Closed``."""
        ...

    async def close(self) -> None:
        """Close the connection (idempotent, bounded in time, never raises for a dead link)."""
        ...


TransportFactory = Callable[[str, Clock], Transport]
"""``factory(room, clock)`` → a fresh, unconnected transport for one connection attempt."""
