"""A raw CyTube socket client for tests: connect, send any frame, wait for any event.

It is what the fake server's own tests use to pin each rule over real sockets, and what a test can
use as "another user" who connects from its own IP (``ip=`` sets ``X-Forwarded-For``, which CyTube
and the fake trust from loopback)::

    async with CytubeTestClient(server.url, ip="10.0.0.2") as alice:
        await alice.join("lobby")
        reply = await alice.login("alice")           # the login reply payload
        await alice.emit("chatMsg", {"msg": "hi", "meta": {}})
        await alice.wait_for("chatMsg", lambda d: d["msg"] == "hi")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio


class CytubeTestClient:
    """One Socket.IO connection recording every event it receives, in order."""

    def __init__(self, url: str, *, ip: str | None = None, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.ip = ip
        self.connect_timeout = connect_timeout
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Event()
        self._sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self._sio.on("*", self._on_event)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on("connect_error", self._on_connect_error)
        self.connect_error: Any = None

    async def __aenter__(self) -> CytubeTestClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect (websocket transport); raises ``socketio.exceptions.ConnectionError`` on refusal."""
        headers = {"X-Forwarded-For": self.ip} if self.ip else {}
        try:
            await self._sio.connect(
                self.url, transports=["websocket"], headers=headers, wait_timeout=self.connect_timeout
            )
        except socketio.exceptions.ConnectionError as exc:
            await self._sio.shutdown()
            # python-socketio's own message is generic; the server's reason came as connect_error.
            reason = self.connect_error.get("message") if isinstance(self.connect_error, dict) else None
            raise socketio.exceptions.ConnectionError(reason or str(exc)) from exc

    async def close(self) -> None:
        if self._sio.connected:
            await self._sio.disconnect()
        await self._sio.shutdown()

    @property
    def connected(self) -> bool:
        return bool(self._sio.connected) and not self.disconnected.is_set()

    async def emit(self, event: str, data: Any = None) -> None:
        if data is None:
            await self._sio.emit(event)
        else:
            await self._sio.emit(event, data)

    def received(self, event: str) -> list[Any]:
        """Payloads of ``event`` received so far, oldest first."""
        return [data for name, data in self.events if name == event]

    def names(self) -> list[str]:
        """Event names received so far, in order."""
        return [name for name, _ in self.events]

    async def wait_for(
        self,
        event: str,
        predicate: Callable[[Any], bool] | None = None,
        *,
        timeout: float = 5.0,
        after: int = 0,
    ) -> Any:
        """The first ``event`` (at index >= ``after`` in ``events``) whose payload matches ``predicate``."""
        async with asyncio.timeout(timeout):
            while True:
                for name, data in self.events[after:]:
                    if name == event and (predicate is None or predicate(data)):
                        return data
                self._changed.clear()
                await self._changed.wait()

    async def quiet(self, seconds: float) -> list[tuple[str, Any]]:
        """Wait ``seconds`` and return what arrived meanwhile (to show the server said nothing)."""
        mark = len(self.events)
        await asyncio.sleep(seconds)
        return self.events[mark:]

    async def join(self, channel: str) -> None:
        await self.emit("joinChannel", {"name": channel})

    async def login(self, name: str, password: str | None = None, *, timeout: float = 5.0) -> Any:
        """Send ``login`` and return the server's ``login`` reply payload."""
        mark = len(self.events)
        await self.emit("login", {"name": name} if password is None else {"name": name, "pw": password})
        return await self.wait_for("login", timeout=timeout, after=mark)

    @classmethod
    async def joined(
        cls, url: str, name: str, *, ip: str | None = None, password: str | None = None, room: str = "lobby"
    ) -> CytubeTestClient:
        """A connected client, joined to ``room`` and logged in, returned once the login's last frame
        has arrived: a registered login ends at the ``setUserRank`` of the channel-rank lookup; a guest
        gets none (CyTube looks channel ranks up for accounts only), its own ``addUser`` is last."""
        client = cls(url, ip=ip)
        await client.connect()
        await client.join(room)
        await client.wait_for("usercount")
        reply = await client.login(name, password)
        if reply.get("success") is not True:
            await client.close()
            raise AssertionError(f"login as {name!r} refused: {reply}")
        last = "setUserRank" if password else "addUser"
        await client.wait_for(last, lambda d: d["name"].lower() == name.lower())
        return client

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        self._changed.set()

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_error = data

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnected.set()
        self._changed.set()
