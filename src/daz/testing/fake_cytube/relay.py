"""The TCP relay that owns the fake server's public port: it makes socket-level faults real.

Every client connection is pumped byte for byte to the Socket.IO server on a private loopback port,
so the server can reset every socket at once, refuse new ones, or black-hole traffic both ways while
the sockets stay open (no PINGs, no frames), as a dropped network path would.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

_CHUNK = 65536


class _Silence(Protocol):
    @property
    def silent(self) -> bool: ...


class RelayConn:
    """One client connection: bytes pumped both ways unless the server is 'silent'."""

    def __init__(
        self,
        server: _Silence,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.reader, self.writer = reader, writer
        self.up_reader, self.up_writer = up_reader, up_writer

    def abort(self) -> None:
        self.writer.transport.abort()
        self.up_writer.transport.abort()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(self.reader, self.up_writer, downstream=False), name="relay.up")
                group.create_task(self._pipe(self.up_reader, self.writer, downstream=True), name="relay.down")
        finally:
            self.abort()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, downstream: bool
    ) -> None:
        try:
            while True:
                chunk = await source.read(_CHUNK)
                if not chunk:
                    break
                if self.server.silent:
                    continue  # black hole: nothing passes, nothing is closed
                sink.write(chunk)
                await sink.drain()
        except OSError:
            return
        if downstream and self.server.silent:
            # The server side gave up (no PONGs); a black-holed client must not notice: keep it open
            # until the client itself hangs up.
            with contextlib.suppress(OSError):
                while await self.reader.read(_CHUNK):
                    pass
            return
        with contextlib.suppress(OSError):
            sink.close()
