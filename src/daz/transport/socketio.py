"""``Transport`` over python-socketio's ``AsyncClient`` (websocket only, its reconnection off).

Two hooks reach below python-socketio's public API, because the public API cannot see them:

* every Engine.IO packet (PINGs included) is timestamped by overriding the Engine.IO client's
  packet-receive method, so the supervisor can apply CyTube's liveness rule (no frame for
  pingInterval + pingTimeout → dead) itself instead of trusting the library's read timeout;
* a Socket.IO frame that fails to decode (non-JSON, no event name) is caught where the client
  decodes it and surfaced as ``WireMalformed`` instead of dying in a background task.

* the websocket read loop is replaced by a faster one with the same semantics (see
  ``_FrameTimedEngineIO``): the library wraps every ``ws.receive()`` in ``asyncio.wait_for`` (a task
  and a timer per frame on Python 3.11) and hands every MESSAGE to a new task. Ours keeps one
  reschedulable deadline for the whole loop and decodes plain Socket.IO events (``42[...]``) inline,
  in arrival order, straight into the transport's inbox. Everything else (CONNECT, DISCONNECT, ACK,
  binary, reserved event names, PING/CLOSE) takes the library's own path, and while such a message is
  still being handled no event overtakes it.

All were written against python-socketio 5.18 / python-engineio 4.15, and pyproject.toml bounds both
to those minors. ``tests/unit/transport/test_engineio_hooks.py`` names every hooked internal (method
signatures, attributes, and a fingerprint of the library code replaced here) and fails, saying which,
when an upgrade changes one; the integration tests against ``daz.testing.fake_cytube`` exercise the
hooks on every run. How to upgrade: docs/architecture.md, "Upgrading python-engineio /
python-socketio".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import aiohttp
import engineio
import socketio
import structlog
from engineio import base_client as eio_base_client
from engineio import packet as eio_packet

from daz.clock import Clock
from daz.errors import (
    ConnectFailed,
    Kicked,
    NotConnected,
    RateLimited,
    ServerDisconnected,
    ServerUnreachable,
    TransportError,
)
from daz.transport.base import Closed, Inbound, WireEvent, WireMalformed

log = structlog.get_logger("daz.transport")

RATE_LIMIT_REASON = "Rate limit exceeded"
CLOSE_TIMEOUT_SECONDS = 2.0
_INBOX_LIMIT = 10_000

# python-socketio logs every packet at INFO; ours stays at WARNING so the bot's log is readable.
_sio_logger = logging.getLogger("daz.transport.socketio")
_sio_logger.setLevel(logging.WARNING)


# An Engine.IO MESSAGE (4) carrying a Socket.IO EVENT (2) for the "/" namespace without an ack id.
_PLAIN_EVENT_PREFIX = "42["
# Names python-socketio routes to its own handlers rather than to the catch-all ``*`` handler.
_RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "__disconnect_final"})
# After this many inline events the read loop yields once, so the session (and the bus behind it)
# drain what arrived before more is read: bursts stay far below the inbox limit.
_YIELD_EVERY_EVENTS = 256
# The read deadline is moved at most once per slack (this, or a tenth of the limit if smaller), not
# per frame; it fires between pingInterval + pingTimeout and that plus the slack after the last frame.
_DEADLINE_SLACK_SECONDS = 1.0


class _FrameTimedEngineIO(engineio.AsyncClient):  # type: ignore[misc]
    """Engine.IO client that timestamps every frame and decodes plain events inline."""

    on_frame: Callable[[], None] | None = None
    on_ping: Callable[[], None] | None = None
    on_event: Callable[[str, Any], None] | None = None
    on_malformed: Callable[[Any, Exception], None] | None = None
    owner: Any = None  # the Socket.IO client (binary-attachment state lives there)
    _slow_pending = 0
    _slow_tasks: set[asyncio.Task[None]] | None = None

    async def _receive_packet(self, pkt: Any) -> None:
        if self.on_frame is not None:
            self.on_frame()
        if pkt.packet_type == eio_packet.PING and self.on_ping is not None:
            self.on_ping()
        await self._dispatch(pkt)

    async def _dispatch(self, pkt: Any) -> None:
        handler = self.handlers.get("message")
        if pkt.packet_type != eio_packet.MESSAGE or handler is None:
            await super()._receive_packet(pkt)
            return
        # As the library does, a task per message (a handler may await the client itself, e.g.
        # disconnect), but counted, so the inline path never overtakes a message still in flight.
        if self._slow_tasks is None:
            self._slow_tasks = set()
        self._slow_pending += 1
        task: asyncio.Task[None] = asyncio.ensure_future(self._deliver(handler, pkt.data))
        self._slow_tasks.add(task)
        task.add_done_callback(self._slow_tasks.discard)

    async def _deliver(self, handler: Callable[[Any], Any], data: Any) -> None:
        try:
            await handler(data)
        finally:
            self._slow_pending -= 1

    def _inline_event(self, data: str) -> bool:
        """Decode and deliver a plain ``42[...]`` event now; False when it must take the slow path."""
        if self._slow_pending or self.on_event is None or getattr(self.owner, "_binary_packet", None):
            return False
        try:
            decoded = json.loads(data[2:])
        except (ValueError, RecursionError) as exc:
            if self.on_malformed is not None:
                self.on_malformed(data[1:], exc)
            return True
        if not decoded or type(decoded[0]) is not str:
            if self.on_malformed is not None:
                self.on_malformed(data[1:], ValueError("event without a name"))
            return True
        name = decoded[0]
        if name in _RESERVED_EVENTS:
            return False
        self.on_event(name, decoded[1] if len(decoded) > 1 else None)
        return True

    async def _read_loop_websocket(self) -> None:
        """The library's websocket read loop, minus a task and a timer per frame (same exits)."""
        try:
            await self._read_frames()
        except TimeoutError:
            self.logger.warning("Server has stopped communicating, aborting")
            await self.queue.put(None)
        await self._read_loop_exit()

    async def _read_frames(self) -> None:
        loop = asyncio.get_running_loop()
        inline = 0
        async with asyncio.timeout(None) as deadline:
            moved = -math.inf
            limit = self.ping_interval + self.ping_timeout
            slack = min(_DEADLINE_SLACK_SECONDS, limit / 10)
            while self.state == "connected" and self.write_loop_task:
                now = loop.time()
                if now - moved >= slack:
                    deadline.reschedule(now + limit + slack)
                    moved = now
                data = await self._next_frame()
                if data is None:
                    await self.queue.put(None)
                    return
                if self.on_frame is not None:
                    self.on_frame()
                if type(data) is str and data.startswith(_PLAIN_EVENT_PREFIX) and self._inline_event(data):
                    inline += 1
                    if inline >= _YIELD_EVERY_EVENTS:
                        inline = 0
                        await asyncio.sleep(0)
                    continue
                try:
                    pkt = eio_packet.Packet(encoded_packet=data)
                except Exception as exc:  # noqa: BLE001 - as the library: an undecodable frame ends it
                    self.logger.info('Unexpected error decoding packet: "%s", aborting', str(exc))
                    await self.queue.put(None)
                    return
                if pkt.packet_type == eio_packet.PING and self.on_ping is not None:
                    self.on_ping()
                await self._dispatch(pkt)

    async def _next_frame(self) -> str | bytes | None:
        """The next frame's payload; None when the connection is over (the library's reasons)."""
        try:
            msg = await self.ws.receive()
        except aiohttp.client_exceptions.ServerDisconnectedError:
            return None
        except Exception as exc:  # noqa: BLE001 - the library's rule: any read error ends the loop
            self.logger.info('Unexpected error receiving packet: "%s", aborting', str(exc))
            return None
        data = msg.data
        if not isinstance(data, str | bytes):
            self.logger.warning("Server sent %s packet data %s, aborting", msg.type, data)
            return None
        return data

    async def _read_loop_exit(self) -> None:
        # The library's tail of the read loop, unchanged.
        if self.write_loop_task:
            await self.write_loop_task
        if self.state == "connected":
            await self._trigger_event("disconnect", self.reason.TRANSPORT_ERROR, run_async=False)
            with contextlib.suppress(ValueError):
                eio_base_client.connected_clients.remove(self)
            await self._reset()


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
        self._ws_response: Any = None  # aiohttp response under the websocket, released on close
        self._connect_error: str | None = None
        self._kick_reason: str | None = None
        self._last_frame_at: float | None = None
        self._last_ping_at: float | None = None
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
        self._sio.eio.on_ping = self._ping
        self._sio.eio.on_event = self._on_wire_event
        self._sio.eio.on_malformed = self._malformed
        self._sio.eio.owner = self._sio
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

    @property
    def last_ping_at(self) -> float | None:
        return self._last_ping_at

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
            if self._connect_error is None:  # no Socket.IO answer at all: no token was counted
                raise ServerUnreachable(f"cannot connect to {url}: {reason}", reason=reason) from exc
            raise ConnectFailed(f"cannot connect to {url}: {reason}", reason=reason) from exc
        self._ping_interval = float(self._sio.eio.ping_interval)
        self._ping_timeout = float(self._sio.eio.ping_timeout)
        self._last_frame_at = self._clock.monotonic()
        self._ws_response = _ws_response(self._sio)

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

    def _ping(self) -> None:
        self._last_ping_at = self._clock.monotonic()

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
        self._on_wire_event(event, args[0] if args else None)

    def _on_wire_event(self, event: str, data: Any) -> None:
        if event == "kick":
            self._kick_reason = str(data.get("reason", "")) if isinstance(data, dict) else str(data)
        self._put(WireEvent(event, data))

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
        # Hold on to the websocket's HTTP response now: engineio forgets ``ws`` while it tears
        # down, and a close cancelled while waiting for a black-holed peer leaves aiohttp's
        # connection unreleased (a ResourceWarning at garbage collection). Closing the response
        # ourselves at the end releases it on every path; it is idempotent.
        responses = [r for r in (self._ws_response, _ws_response(self._sio)) if r is not None]
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self._sio.disconnect()
        except TimeoutError:
            log.warning("transport.close_timeout", room=self.room)
            with contextlib.suppress(Exception):
                await self._sio.eio.disconnect(abort=True)
        except (OSError, RuntimeError, ValueError) as exc:
            log.debug("transport.close_error", room=self.room, error=repr(exc))
        finally:
            for response in responses:
                response.close()
            self._ws_response = None
        http = getattr(self._sio.eio, "http", None)
        if http is not None and not http.closed:
            await http.close()


def _ws_response(sio: socketio.AsyncClient) -> Any:
    """The aiohttp response under engineio's websocket (engineio internals, pinned by tests)."""
    return getattr(getattr(sio.eio, "ws", None), "_response", None)


def socketio_transport_factory(room: str, clock: Clock) -> SocketIOTransport:
    """The default ``TransportFactory``."""
    return SocketIOTransport(room, clock)
