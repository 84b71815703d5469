"""``Transport`` over python-socketio's ``AsyncClient`` (websocket only, its reconnection off).

Two hooks reach below python-socketio's public API, because the public API cannot see them:

* every Engine.IO packet (PINGs included) is timestamped by overriding the Engine.IO client's
  packet-receive method, so the supervisor can apply CyTube's liveness rule (no frame for
  pingInterval + pingTimeout → dead) itself instead of trusting the library's read timeout;
* a Socket.IO frame that fails to decode (non-JSON, no event name) is caught where the client
  decodes it and surfaced as ``WireMalformed`` instead of dying in a background task.

Both were written against python-socketio 5.18 / python-engineio 4.15; the integration tests
against ``daz.testing.fake_cytube`` exercise them on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import engineio
import socketio
import structlog

from daz.clock import Clock
from daz.errors import ConnectFailed, Kicked, NotConnected, RateLimited, ServerDisconnected, TransportError
from daz.transport.base import Closed, Inbound, WireEvent, WireMalformed

log = structlog.get_logger("daz.transport")

RATE_LIMIT_REASON = "Rate limit exceeded"
CLOSE_TIMEOUT_SECONDS = 2.0
_INBOX_LIMIT = 10_000

# python-socketio logs every packet at INFO; ours stays at WARNING so the bot's log is readable.
_sio_logger = logging.getLogger("daz.transport.socketio")
_sio_logger.setLevel(logging.WARNING)


class _FrameTimedEngineIO(engineio.AsyncClient):  # type: ignore[misc]
    """Engine.IO client that reports every received packet (PING, MESSAGE, NOOP, CLOSE)."""

    on_frame: Any = None

    async def _receive_packet(self, pkt: Any) -> None:
        if self.on_frame is not None:
            self.on_frame()
        await super()._receive_packet(pkt)


class _Client(socketio.AsyncClient):  # type: ignore[misc]
    """Socket.IO client whose undecodable frames become ``WireMalformed`` items."""

    on_malformed: Any = None

    def _engineio_client_class(self) -> type[engineio.AsyncClient]:
        return _FrameTimedEngineIO

    async def _handle_eio_message(self, data: Any) -> None:
        try:
            await super()._handle_eio_message(data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            if self.on_malformed is not None:
                self.on_malformed(data, exc)


class SocketIOTransport:
    """One python-socketio connection. Make a new instance for every connection attempt."""

    def __init__(self, room: str, clock: Clock, *, request_timeout: float = 5.0) -> None:
        self.room = room
        self._clock = clock
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=_INBOX_LIMIT)
        self._closed: Closed | None = None
        self._connect_error: str | None = None
        self._kick_reason: str | None = None
        self._last_frame_at: float | None = None
        self._ping_interval: float | None = None
        self._ping_timeout: float | None = None
        self._sio = _Client(
            reconnection=False,
            handle_sigint=False,
            logger=_sio_logger,
            engineio_logger=False,
            request_timeout=request_timeout,
        )
        self._sio.eio.on_frame = self._frame
        self._sio.on_malformed = self._malformed
        self._sio.on("connect_error", self._on_connect_error)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on("*", self._on_event)

    # Transport protocol ----------------------------------------------------------------------
    @property
    def ping_interval(self) -> float | None:
        return self._ping_interval

    @property
    def ping_timeout(self) -> float | None:
        return self._ping_timeout

    @property
    def last_frame_at(self) -> float | None:
        return self._last_frame_at

    async def connect(self, url: str, *, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._sio.connect(
                    url, transports=["websocket"], wait_timeout=timeout, namespaces=["/"]
                )
        except TimeoutError as exc:
            await self._abort()
            raise ConnectFailed(f"connect to {url} timed out after {timeout}s", reason="timeout") from exc
        except (socketio.exceptions.ConnectionError, ValueError, OSError) as exc:
            await self._abort()
            reason = self._connect_error or str(exc) or type(exc).__name__
            if reason == RATE_LIMIT_REASON:
                raise RateLimited(f"{url} refused the connection: {reason}", reason=reason) from exc
            raise ConnectFailed(f"cannot connect to {url}: {reason}", reason=reason) from exc
        self._ping_interval = float(self._sio.eio.ping_interval)
        self._ping_timeout = float(self._sio.eio.ping_timeout)
        self._last_frame_at = self._clock.monotonic()

    async def emit(self, event: str, data: Any) -> None:
        if self._closed is not None or not self._sio.connected:
            raise NotConnected(f"cannot send '{event}': not connected", reason="not connected")
        try:
            await self._sio.emit(event, data)
        except socketio.exceptions.BadNamespaceError as exc:
            raise NotConnected(f"cannot send '{event}': not connected", reason="not connected") from exc

    async def receive(self) -> Inbound:
        if self._closed is not None and self._inbox.empty():
            return self._closed
        return await self._inbox.get()

    async def close(self) -> None:
        if self._closed is None:
            self._finish(ServerDisconnected("closed by client", reason="client disconnect"))
        await self._abort()

    # callbacks from python-socketio ----------------------------------------------------------
    def _frame(self) -> None:
        self._last_frame_at = self._clock.monotonic()

    def _malformed(self, data: Any, exc: Exception) -> None:
        size = len(data) if isinstance(data, str | bytes) else 0
        self._put(WireMalformed(event="?", size=size, detail=type(exc).__name__))

    def _on_connect_error(self, data: Any = None) -> None:
        if isinstance(data, dict):
            self._connect_error = str(data.get("message", data))
        elif data is not None:
            self._connect_error = str(data)

    def _on_disconnect(self, reason: Any = None) -> None:
        text = str(reason) if reason is not None else "transport error"
        error: TransportError
        if self._kick_reason is not None:
            error = Kicked(f"kicked: {self._kick_reason}", reason=self._kick_reason)
        else:
            error = ServerDisconnected(f"disconnected: {text}", reason=text)
        self._finish(error)

    def _on_event(self, event: str, *args: Any) -> None:
        if event == "kick":
            data = args[0] if args else None
            self._kick_reason = str(data.get("reason", "")) if isinstance(data, dict) else str(data)
        self._put(WireEvent(event, args[0] if args else None))

    # internals -------------------------------------------------------------------------------
    def _put(self, item: Inbound) -> None:
        if self._closed is not None:
            return
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            # A reader that stopped reading: losing the connection is safer than unbounded memory.
            self._finish(ServerDisconnected("inbound queue overflow", reason="inbound overflow"))

    def _finish(self, error: TransportError) -> None:
        if self._closed is not None:
            return
        self._closed = Closed(error)
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(self._closed)

    async def _abort(self) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self._sio.disconnect()
        except TimeoutError:
            log.warning("transport.close_timeout", room=self.room)
            with contextlib.suppress(Exception):
                await self._sio.eio.disconnect(abort=True)
        except (OSError, RuntimeError, ValueError) as exc:
            log.debug("transport.close_error", room=self.room, error=repr(exc))
        http = getattr(self._sio.eio, "http", None)
        if http is not None and not http.closed:
            await http.close()


def socketio_transport_factory(room: str, clock: Clock) -> SocketIOTransport:
    """The default ``TransportFactory``."""
    return SocketIOTransport(room, clock)
