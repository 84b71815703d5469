"""A stopped fake server holds no connection: not even one accepted just before ``stop()``.

The fake's public port is a relay; an accepted socket is relayed only once its upstream leg is open.
A ``stop()`` that lands in between must end that socket too: otherwise the client stays connected
to a "stopped" server, and the accepted transport outlives the server (an unclosed-transport
ResourceWarning at garbage collection, which fails whichever test happens to collect it).
"""

from __future__ import annotations

import asyncio
import contextlib

from daz.testing.fake_cytube import FakeCytubeServer


async def test_a_connection_accepted_just_before_stop_is_closed_by_it() -> None:
    async with FakeCytubeServer() as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            # Wait (bounded) until the server has accepted it and is opening the upstream leg.
            for _ in range(10_000):
                if server._accepting:
                    break
                await asyncio.sleep(0)
            assert server._accepting, "the accept never started"
            await server.stop()
            with contextlib.suppress(ConnectionResetError):
                data = await asyncio.wait_for(reader.read(1), 2.0)
                assert data == b"", "a stopped server relayed a connection accepted before stop()"
            assert server.open_connections == 0
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
