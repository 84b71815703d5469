"""What the fake server's socket tests share: shrunk timings and limits, and a joined client."""

from __future__ import annotations

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer, PlaybackTiming
from daz.testing.fake_cytube.client import CytubeTestClient

FAST = PlaybackTiming(tick_seconds=0.05, lead_in_seconds=0.15, end_grace_seconds=0.1)  # updates every 0.25 s
LIMITS = CytubeLimits(guest_login_window_seconds=0.05, usercount_interval_seconds=0.2)


async def joined(
    server: FakeCytubeServer, name: str, ip: str, password: str | None = None, room: str = "lobby"
) -> CytubeTestClient:
    """``CytubeTestClient.joined`` on ``server``: connected, in ``room``, logged in as ``name``."""
    return await CytubeTestClient.joined(server.url, name, ip=ip, password=password, room=room)
