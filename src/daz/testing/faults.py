"""A loopback TCP proxy that injects network faults between daz and a server.

Put it between daz and the fake CyTube server or PostgreSQL, point daz at ``proxy.port``, and flip
its mode while the test runs::

    async with TcpProxy("127.0.0.1", server_port) as proxy:
        proxy.delay(200)        # every chunk forwarded 200 ms late, order kept
        proxy.drop_new()        # new connections are reset right after accept; existing ones work
        proxy.cut()             # close every open connection (FIN, or RST with reset=True)
        proxy.blackhole()       # open connections go silent: nothing forwarded, nothing closed
        proxy.pass_through()    # back to normal for new connections

The black hole is the half-open case: both sockets stay open, no FIN and no RST reaches either
side, data sent into it disappears. Only a heartbeat timeout can notice it. A connection that was
black-holed stays silent after ``pass_through()`` (its byte stream has lost data and can never be
valid again) until the peer gives up or the test calls ``cut()``.

Only 127.0.0.1 is used. Every task lives in a per-connection ``TaskGroup``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import socket
import struct
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import structlog

log = structlog.get_logger("daz.testing.faults")

_CHUNK_BYTES = 65536
_CONNECT_TIMEOUT_SECONDS = 5.0
_QUEUE_CHUNKS = 256


class ProxyMode(enum.Enum):
    FORWARD = "forward"
    DELAY = "delay"
    DROP_NEW = "drop_new"
    BLACKHOLE = "blackhole"


@dataclass
class ConnectionStats:
    """Counters of one proxied connection (client = the side that connected to the proxy)."""

    id: int
    opened_at: float
    bytes_up: int = 0
    bytes_down: int = 0
    bytes_swallowed: int = 0
    closed_at: float | None = None
    blackholed: bool = False
    was_cut: bool = False

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass
class ProxyStats:
    accepted: int = 0
    refused: int = 0
    cut: int = 0
    upstream_failures: int = 0
    connections: list[ConnectionStats] = field(default_factory=list)

    @property
    def active(self) -> int:
        return sum(1 for c in self.connections if c.open)


class _Conn:
    def __init__(
        self,
        stats: ConnectionStats,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.stats = stats
        self.client_reader, self.client_writer = client
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.closed = asyncio.Event()

    def close(self, *, reset: bool = False) -> None:
        for writer in (self.client_writer, self.upstream_writer):
            if writer is None:
                continue
            if reset:
                _set_linger_zero(writer)
            writer.close()
        self.closed.set()


def _set_linger_zero(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` → ``target``; see the module docstring for the modes."""

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._listen_port = listen_port
        self._mode = ProxyMode.FORWARD
        self._delay_seconds = 0.0
        self._server: asyncio.Server | None = None
        self._conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self.stats = ProxyStats()

    # -- facts ---------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def mode(self) -> ProxyMode:
        return self._mode

    @property
    def delay_seconds(self) -> float:
        return self._delay_seconds

    # -- controls ------------------------------------------------------------------------------

    def pass_through(self) -> None:
        self._set_mode(ProxyMode.FORWARD, 0.0)

    def delay(self, ms: float) -> None:
        """Forward every chunk ``ms`` milliseconds after it arrived (both directions, order kept)."""
        if ms < 0:
            raise ValueError("delay must be >= 0 ms")
        self._set_mode(ProxyMode.DELAY, ms / 1000.0)

    def drop_new(self) -> None:
        """Reset every new connection right after accepting it; open connections are untouched."""
        self._set_mode(ProxyMode.DROP_NEW, 0.0)

    def blackhole(self) -> None:
        """Silence every open connection and every new one: no bytes forwarded, no FIN, no RST."""
        self._set_mode(ProxyMode.BLACKHOLE, 0.0)
        for conn in self._conns.values():
            conn.stats.blackholed = True

    def cut(self, *, reset: bool = False) -> int:
        """Close every open connection on both sides; returns how many were cut. Mode unchanged."""
        conns = list(self._conns.values())
        for conn in conns:
            conn.stats.was_cut = True
            conn.close(reset=reset)
        self.stats.cut += len(conns)
        log.info("proxy.cut", port=self._port_or_none(), connections=len(conns), reset=reset)
        return len(conns)

    def set_target(self, host: str, port: int) -> None:
        """Send new connections elsewhere (a restarted server on a new port)."""
        self.target_host, self.target_port = host, port

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._listen_port)
        log.info("proxy.started", port=self.port, target_port=self.target_port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for conn in list(self._conns.values()):
            conn.close()
        await server.wait_closed()
        log.info("proxy.stopped", accepted=self.stats.accepted, cut=self.stats.cut)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- internals -----------------------------------------------------------------------------

    def _port_or_none(self) -> int | None:
        return self.port if self._server is not None else None

    def _set_mode(self, mode: ProxyMode, delay: float) -> None:
        self._mode, self._delay_seconds = mode, delay
        log.info("proxy.mode", port=self._port_or_none(), mode=mode.value, delay_seconds=delay)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode is ProxyMode.DROP_NEW:
            self.stats.refused += 1
            _set_linger_zero(writer)
            writer.close()
            return
        stats = ConnectionStats(id=next(self._ids), opened_at=time.monotonic())
        self.stats.accepted += 1
        self.stats.connections.append(stats)
        conn = _Conn(stats, (reader, writer))
        self._conns[stats.id] = conn
        try:
            await self._serve(conn)
        finally:
            conn.close()
            stats.closed_at = time.monotonic()
            self._conns.pop(stats.id, None)

    async def _serve(self, conn: _Conn) -> None:
        upstream_reader: asyncio.StreamReader | None = None
        if self._mode is ProxyMode.BLACKHOLE:
            conn.stats.blackholed = True
        else:
            try:
                upstream_reader, conn.upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), _CONNECT_TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError):
                self.stats.upstream_failures += 1
                return
        if conn.closed.is_set():  # cut while connecting
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    *self._direction(tg, conn, conn.client_reader, conn.upstream_writer, up=True),
                    *(
                        self._direction(tg, conn, upstream_reader, conn.client_writer, up=False)
                        if upstream_reader is not None
                        else []
                    ),
                ]
                tg.create_task(self._closer(conn, tasks), name=f"proxy-{conn.stats.id}-closer")
        except* (OSError, asyncio.IncompleteReadError):
            log.debug("proxy.connection_error", connection=conn.stats.id)

    def _direction(
        self,
        tg: asyncio.TaskGroup,
        conn: _Conn,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter | None,
        *,
        up: bool,
    ) -> list[asyncio.Task[None]]:
        # A reader and a writer joined by a queue: a chunk read at t is written at t + delay, so
        # delay() adds latency without throttling throughput (a long link, not a slow one).
        chunks: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        name = f"proxy-{conn.stats.id}-{'up' if up else 'down'}"
        return [
            tg.create_task(self._read(conn, reader, chunks, up=up), name=f"{name}-read"),
            tg.create_task(self._write(conn, writer, chunks, up=up), name=f"{name}-write"),
        ]

    async def _closer(self, conn: _Conn, tasks: list[asyncio.Task[None]]) -> None:
        await conn.closed.wait()
        for task in tasks:
            task.cancel()

    async def _read(
        self, conn: _Conn, reader: asyncio.StreamReader, chunks: asyncio.Queue[tuple[float, bytes] | None],
        *, up: bool,
    ) -> None:
        try:
            while data := await reader.read(_CHUNK_BYTES):
                if conn.stats.blackholed:
                    conn.stats.bytes_swallowed += len(data)
                    continue
                await chunks.put((time.monotonic() + self._delay_seconds, data))
            if conn.stats.blackholed and not up:
                # The server ended the connection behind the black hole: its FIN does not reach the
                # client either (a partitioned client cannot learn that its session was dropped).
                await conn.closed.wait()
                return
            await chunks.put(None)
        except (OSError, asyncio.IncompleteReadError):
            conn.close()

    async def _write(
        self,
        conn: _Conn,
        writer: asyncio.StreamWriter | None,
        chunks: asyncio.Queue[tuple[float, bytes] | None],
        *,
        up: bool,
    ) -> None:
        try:
            while (item := await chunks.get()) is not None:
                due, data = item
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                if conn.stats.blackholed or writer is None:
                    conn.stats.bytes_swallowed += len(data)
                    continue
                writer.write(data)
                await writer.drain()
                if up:
                    conn.stats.bytes_up += len(data)
                else:
                    conn.stats.bytes_down += len(data)
        except OSError:
            pass
        # One side finished (EOF or error): end the whole connection, like a proxy that cannot
        # half-close. A black-holed connection never gets here from its peer's silence.
        conn.close()
