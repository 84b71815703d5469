"""What the fake server's socket tests share: shrunk timings and limits, and a joined client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer, PlaybackTiming
from daz.testing.fake_cytube.client import CytubeTestClient

FAST = PlaybackTiming(tick_seconds=0.05, lead_in_seconds=0.15, end_grace_seconds=0.1)  # updates every 0.25 s
LIMITS = CytubeLimits(guest_login_window_seconds=0.05, usercount_interval_seconds=0.2)


async def joined(
    server: FakeCytubeServer, name: str, ip: str, password: str | None = None, room: str = "lobby"
) -> CytubeTestClient:
    """``CytubeTestClient.joined`` on ``server``: connected, in ``room``, logged in as ``name``."""
    return await CytubeTestClient.joined(server.url, name, ip=ip, password=password, room=room)


@contextlib.asynccontextmanager
async def moderated_lobby(
    limits: CytubeLimits = LIMITS,
) -> AsyncIterator[tuple[FakeCytubeServer, CytubeTestClient]]:
    """A server with a registered ``lobby`` where the account ``mod`` (password ``pw``) has channel
    rank 2; yields it and ``mod`` joined from 10.0.0.1 (the test closes ``mod``)."""
    async with FakeCytubeServer(
        limits=limits, playback=FAST, registered_channels=["lobby"], accounts={"mod": "pw"}
    ) as server:
        await server.set_rank("lobby", "mod", 2)
        yield server, await joined(server, "mod", "10.0.0.1", "pw")
