"""The fault-injection proxy against a tiny echo server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from daz.testing.faults import ProxyMode, TcpProxy

SILENCE_SECONDS = 0.3


@dataclass
class EchoServer:
    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0
    closed: int = 0


async def _echo(server: EchoServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    server.connections += 1
    try:
        while data := await reader.read(65536):
            server.received += data
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        server.closed += 1
        writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    state = EchoServer()
    server = await asyncio.start_server(lambda r, w: _echo(state, r, w), "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state
        server.close()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[TcpProxy]:
    async with TcpProxy("127.0.0.1", echo.port) as p:
        yield p


async def _connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def test_forwards_both_ways_and_counts_bytes(proxy: TcpProxy, echo: EchoServer) -> None:
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"hello") == b"hello"
    assert await _roundtrip(reader, writer, b"x" * 100_000) == b"x" * 100_000
    assert bytes(echo.received) == b"hello" + b"x" * 100_000
    conn = proxy.stats.connections[0]
    assert (conn.bytes_up, conn.bytes_down) == (100_005, 100_005)
    assert proxy.stats.accepted == 1
    assert proxy.stats.active == 1
    writer.close()
    await writer.wait_closed()


async def test_delay_adds_latency_each_way_without_throttling(proxy: TcpProxy) -> None:
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"warm")
    proxy.delay(100)
    assert proxy.mode is ProxyMode.DELAY
    started = time.monotonic()
    assert await _roundtrip(reader, writer, b"ping") == b"ping"
    assert time.monotonic() - started >= 0.2, "100 ms each way"

    # Twenty chunks sent back to back arrive together, one delay later, not twenty delays later.
    started = time.monotonic()
    for i in range(20):
        writer.write(f"{i:02d}".encode())
        await writer.drain()
        await asyncio.sleep(0.005)
    got = await asyncio.wait_for(reader.readexactly(40), 5)
    assert got == b"".join(f"{i:02d}".encode() for i in range(20)), "order is kept"
    assert time.monotonic() - started < 20 * 0.1, "latency must not accumulate per chunk"
    proxy.pass_through()
    writer.close()


async def test_drop_new_resets_new_connections_but_keeps_open_ones(proxy: TcpProxy) -> None:
    reader, writer = await _connect(proxy)
    proxy.drop_new()
    new_reader, new_writer = await _connect(proxy)
    new_writer.write(b"anyone?")
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(new_reader.readexactly(7), 5)
    new_writer.close()
    assert proxy.stats.refused == 1
    assert await _roundtrip(reader, writer, b"still here") == b"still here"

    proxy.pass_through()
    again_reader, again_writer = await _connect(proxy)
    assert await _roundtrip(again_reader, again_writer, b"back") == b"back"
    for w in (writer, again_writer):
        w.close()


async def test_cut_closes_open_connections_and_new_ones_work(proxy: TcpProxy, echo: EchoServer) -> None:
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"one")
    assert proxy.cut() == 1
    assert await asyncio.wait_for(reader.read(), 5) == b"", "the client sees EOF"
    for _ in range(100):  # the server side is closed too (bounded wait)
        if echo.closed == 1:
            break
        await asyncio.sleep(0.01)
    assert echo.closed == 1
    assert proxy.stats.cut == 1
    assert proxy.stats.active == 0
    assert proxy.stats.connections[0].was_cut

    reader2, writer2 = await _connect(proxy)
    assert await _roundtrip(reader2, writer2, b"two") == b"two"
    writer.close()
    writer2.close()


async def test_cut_with_reset_sends_rst(proxy: TcpProxy) -> None:
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"one")
    proxy.cut(reset=True)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)
    writer.close()


async def test_blackhole_is_silent_without_fin(proxy: TcpProxy, echo: EchoServer) -> None:
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"before")
    proxy.blackhole()
    writer.write(b"into the void")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), SILENCE_SECONDS)
    assert not reader.at_eof(), "no FIN: the connection looks open"
    assert bytes(echo.received) == b"before", "nothing reached the server"
    assert echo.closed == 0, "the server side stays open too"
    assert proxy.stats.connections[0].bytes_swallowed == len(b"into the void")

    # New connections are accepted but silent as well.
    new_reader, new_writer = await _connect(proxy)
    new_writer.write(b"hello?")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(new_reader.read(1), SILENCE_SECONDS)

    # Healing the network does not revive a stream that lost bytes; a fresh connection works.
    proxy.pass_through()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), SILENCE_SECONDS)
    proxy.cut()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    fresh_reader, fresh_writer = await _connect(proxy)
    assert await _roundtrip(fresh_reader, fresh_writer, b"after") == b"after"
    for w in (writer, new_writer, fresh_writer):
        w.close()


async def test_client_close_closes_upstream(proxy: TcpProxy, echo: EchoServer) -> None:
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"bye")
    writer.close()
    await writer.wait_closed()
    for _ in range(100):
        if echo.closed == 1 and proxy.stats.active == 0:
            break
        await asyncio.sleep(0.01)
    assert echo.closed == 1
    assert proxy.stats.active == 0


async def test_upstream_down_closes_the_client_and_retargeting_works(echo: EchoServer) -> None:
    async with TcpProxy("127.0.0.1", 1) as proxy:  # port 1: nothing listens there
        reader, writer = await _connect(proxy)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert proxy.stats.upstream_failures == 1
        writer.close()
        proxy.set_target("127.0.0.1", echo.port)
        reader, writer = await _connect(proxy)
        assert await _roundtrip(reader, writer, b"found") == b"found"
        writer.close()


async def test_stop_closes_everything(echo: EchoServer) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port)
    await proxy.start()
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"x")
    port = proxy.port
    await proxy.stop()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    writer.close()


def test_negative_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="delay"):
        TcpProxy("127.0.0.1", 1).delay(-1)


async def test_a_server_closing_behind_the_black_hole_is_not_seen_by_the_client() -> None:
    """A partitioned client cannot learn that the server dropped its session (no FIN crosses)."""
    closing = asyncio.Event()

    async def close_on_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await closing.wait()
        writer.close()

    server = await asyncio.start_server(close_on_request, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, TcpProxy("127.0.0.1", port) as proxy:
        reader, writer = await _connect(proxy)
        await asyncio.sleep(0.05)  # the upstream connection is open
        proxy.blackhole()
        closing.set()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), SILENCE_SECONDS)
        assert not reader.at_eof()
        writer.close()
        server.close()
