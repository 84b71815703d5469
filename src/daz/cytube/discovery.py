"""Where a room's Socket.IO server is, and whether it is reachable right now.

``GET {base}/socketconfig/{channel}.json`` → ``{"servers": [{"url", "secure"}, …]}``; a secure
entry is preferred, else the first. A failed lookup raises ``ConnectFailed`` and is retried by the
supervisor's backoff loop like any failed connect (it must never strand the room).

The reachability probe used while backing off is deliberately cheap: the same small JSON GET when
discovery is in use, else a bare TCP connect to the configured server (no Socket.IO handshake, so
it never spends a token of CyTube's per-IP connection bucket).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp

from daz.errors import ConnectFailed


class Endpoint(Protocol):
    async def resolve(self) -> str:
        """The Socket.IO server URL for the room; raises ``ConnectFailed``."""
        ...

    async def probe(self) -> bool:
        """True when the server looks reachable; never raises."""
        ...


def pick_server(payload: Any) -> str:
    """The URL to use from a socketconfig document (secure first, else the first entry)."""
    servers = payload.get("servers") if isinstance(payload, dict) else None
    if not isinstance(servers, list):
        raise ConnectFailed("socketconfig has no 'servers' list", reason="bad document")
    entries = [s for s in servers if isinstance(s, dict) and isinstance(s.get("url"), str)]
    if not entries:
        raise ConnectFailed("socketconfig lists no servers", reason="no servers")
    secure = [s for s in entries if s.get("secure") is True]
    return str((secure or entries)[0]["url"])


@dataclass(frozen=True, slots=True)
class HttpEndpoint:
    """The real endpoint: socketconfig discovery (or a fixed server URL) and a cheap probe."""

    channel: str
    base_url: str
    server_url: str | None = None
    timeout: float = 5.0

    @property
    def socketconfig_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/socketconfig/{quote(self.channel)}.json"

    async def resolve(self) -> str:
        if self.server_url is not None:
            return self.server_url
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
                http.get(self.socketconfig_url) as response,
            ):
                if response.status != 200:
                    raise ConnectFailed(
                        f"socketconfig lookup for {self.channel} answered HTTP {response.status}",
                        reason=f"HTTP {response.status}",
                    )
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConnectFailed(
                f"socketconfig lookup for {self.channel} failed: {type(exc).__name__}",
                reason="unreachable",
            ) from exc
        return pick_server(payload)

    async def probe(self) -> bool:
        if self.server_url is None:
            try:
                await self.resolve()
            except ConnectFailed:
                return False
            return True
        return await tcp_probe(self.server_url, self.timeout)


async def tcp_probe(url: str, timeout: float) -> bool:
    """A bare TCP connect to the URL's host and port (closed at once)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
