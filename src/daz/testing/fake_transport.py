"""``FakeTransport``: the ``Transport`` seam without sockets, for deterministic supervisor tests.

A ``FakeNetwork`` plays a small CyTube server in memory: it answers ``joinChannel`` with a backlog
and ``userlist``, ``login`` with a reply, echoes chat, and can refuse connects, rate-limit, kick,
go silent or drop the link on command. Time is whatever ``Clock`` the test passes (``FakeClock``),
so liveness and backoff are tested without sleeping.

    network = FakeNetwork()
    manager = RoomManager(config, bus, metrics, clock, rng, network.factory,
                          endpoint_factory=network.endpoint)
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from daz.clock import Clock
from daz.config import RoomConfig
from daz.errors import (
    ConnectFailed,
    Kicked,
    NotConnected,
    RateLimited,
    ServerDisconnected,
    ServerUnreachable,
    TransportError,
)
from daz.testing.fake_cytube.permissions import UNREGISTERED_PERMISSIONS
from daz.transport.base import Closed, Inbound, WireEvent, WireMalformed


@dataclass
class FakeLine:
    room: str
    username: str
    text: str
    time_ms: int


@dataclass
class FakeNetwork:
    """Shared, scriptable state of every ``FakeTransport`` a test creates."""

    ping_interval: float = 25.0
    ping_timeout: float = 120.0
    reachable: bool = True
    answer_join: bool = True
    answer_login: bool = True
    login_error: str | None = None
    echo_chat: bool = True
    connect_failures: deque[TransportError] = field(default_factory=deque)
    cooldowns: deque[int] = field(default_factory=deque)
    backlog: list[FakeLine] = field(default_factory=list)
    chat_log: list[FakeLine] = field(default_factory=list)
    transports: list[FakeTransport] = field(default_factory=list)
    connects: int = 0
    # Rooms resolve to one server ``fake://<shared_host>/<channel>`` (one admission ledger) when set,
    # else each channel is its own server.
    shared_host: str | None = None

    def factory(self, room: str, clock: Clock) -> FakeTransport:
        transport = FakeTransport(room, clock, self)
        self.transports.append(transport)
        return transport

    def endpoint(self, room: RoomConfig) -> FakeEndpoint:
        return FakeEndpoint(self, room.channel)

    @property
    def current(self) -> FakeTransport | None:
        live = [t for t in self.transports if t.connected]
        return live[-1] if live else None

    def refuse(self, error: TransportError | None = None) -> None:
        """Fail the next connect with ``error`` (default: a plain connection error)."""
        self.connect_failures.append(error or ConnectFailed("refused", reason="Connection error"))


@dataclass
class FakeEndpoint:
    network: FakeNetwork
    channel: str
    probes: int = 0

    async def resolve(self) -> str:
        if not self.network.reachable:
            raise ConnectFailed("unreachable", reason="unreachable")
        host = self.network.shared_host
        return f"fake://{host}/{self.channel}" if host else f"fake://{self.channel}"

    async def probe(self) -> bool:
        self.probes += 1
        return self.network.reachable


class FakeTransport:
    """Implements ``daz.transport.base.Transport`` in memory."""

    def __init__(self, room: str, clock: Clock, network: FakeNetwork) -> None:
        self.room = room
        self.clock = clock
        self.network = network
        self.emitted: list[tuple[str, Any]] = []
        self.connected = False
        self.silent = False
        self.username: str | None = None
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self._closed: Closed | None = None
        self._last_frame_at: float | None = None
        self._last_ping_at: float | None = None
        self._ping_interval: float | None = None
        self._ping_timeout: float | None = None

    # Transport -------------------------------------------------------------------------------
    @property
    def ping_interval(self) -> float | None:
        return self._ping_interval

    @property
    def ping_timeout(self) -> float | None:
        return self._ping_timeout

    @property
    def last_frame_at(self) -> float | None:
        return self._last_frame_at

    @property
    def last_ping_at(self) -> float | None:
        return self._last_ping_at

    async def connect(self, url: str, *, timeout: float) -> None:
        await asyncio.sleep(0)
        self.network.connects += 1
        if self.network.connect_failures:
            raise self.network.connect_failures.popleft()
        if not self.network.reachable:
            raise ServerUnreachable(f"cannot connect to {url}", reason="Connection error")
        self.connected = True
        self._ping_interval = self.network.ping_interval
        self._ping_timeout = self.network.ping_timeout
        self._event_frame()
        self.push("rank", -1)

    async def emit(self, event: str, data: Any) -> None:
        if not self.connected or self._closed is not None:
            raise NotConnected(f"cannot send {event}", reason="not connected")
        self.emitted.append((event, data))
        self._answer(event, data)

    async def receive(self) -> Inbound:
        if self._closed is not None and self._inbox.empty():
            return self._closed
        return await self._inbox.get()

    async def close(self) -> None:
        self.drop(ServerDisconnected("closed by client", reason="client disconnect"))

    # test controls -----------------------------------------------------------------------------
    def frame(self) -> None:
        """A server PING arrives now (a frame, and the half-open detector's heartbeat)."""
        if not self.silent:
            self._last_frame_at = self._last_ping_at = self.clock.monotonic()

    def ping(self) -> None:
        """Same as ``frame``: a server PING arrives now."""
        self.frame()

    def _event_frame(self) -> None:
        if not self.silent:
            self._last_frame_at = self.clock.monotonic()

    def push(self, name: str, data: Any = None) -> None:
        """Deliver a server event (counts as a frame)."""
        if self._closed is not None or self.silent:
            return
        self._event_frame()
        self._inbox.put_nowait(WireEvent(name, data))

    def push_malformed(self, size: int = 10) -> None:
        self._event_frame()
        self._inbox.put_nowait(WireMalformed(event="?", size=size, detail="ValueError"))

    def drop(self, error: TransportError | None = None) -> None:
        """End the connection as the server or network would."""
        if self._closed is not None:
            return
        self.connected = False
        self._closed = Closed(error or ServerDisconnected("transport error", reason="transport error"))
        self._inbox.put_nowait(self._closed)

    def kick(self, reason: str) -> None:
        self.push("kick", {"reason": reason})
        self.drop(Kicked(f"kicked: {reason}", reason=reason))

    # the in-memory server ----------------------------------------------------------------------
    def _answer(self, event: str, data: Any) -> None:
        net = self.network
        if event == "joinChannel" and net.answer_join:
            # The real server opens the join burst with the channel's permissions; the replica counts
            # a join as complete only once it has seen them (daz.cytube.channel.sync).
            self.push("setPermissions", dict(UNREGISTERED_PERMISSIONS))
            for line in net.backlog[-15:]:
                self.push(
                    "chatMsg", {"username": line.username, "msg": line.text, "meta": {}, "time": line.time_ms}
                )
            self.push("userlist", [])
            self.push("usercount", 1)
        elif event == "login" and net.answer_login:
            if net.login_error is not None:
                self.push("login", {"success": False, "error": net.login_error})
                return
            self.username = str(data.get("name"))
            guest = "pw" not in data
            # As on CyTube 3.86: a guest gets rank 0 before its login reply and no rank after it; a
            # registered account's channel rank follows the login. Then our own addUser, which
            # completes the replica's join (ctx.channel works on this fake too).
            rank = 0 if guest else 1
            if guest:
                self.push("rank", rank)
            self.push("login", {"success": True, "name": self.username, "guest": guest})
            if not guest:
                self.push("rank", rank)
            self.push("addUser", {"name": self.username, "rank": rank, "profile": {"image": "", "text": ""},
                                  "meta": {"afk": False, "muted": False, "smuted": False}})
        elif event in ("chatMsg", "pm") and self.username is not None:
            if net.cooldowns:
                self.push("cooldown", net.cooldowns.popleft())
                return
            now_ms = int(self.clock.now().timestamp() * 1000)
            line = FakeLine(self.room, self.username, str(data.get("msg", ""))[:320], now_ms)
            net.chat_log.append(line)
            if event == "chatMsg":
                net.backlog.append(line)
            if net.echo_chat:
                payload: dict[str, Any] = {
                    "username": line.username,
                    "msg": line.text,
                    "meta": {},
                    "time": line.time_ms,
                }
                if event == "pm":
                    payload["to"] = data.get("to")
                self.push(event, payload)


__all__ = ["FakeEndpoint", "FakeLine", "FakeNetwork", "FakeTransport", "RateLimited"]
