"""Who is in a channel: members (sockets or simulated users) and ban records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daz.testing.fake_cytube.limits import FloodLimiter

NO_PAYLOAD = object()  # an event sent with no argument (closePoll, channelNotRegistered, ...)
ADMIN_RANK = 255


@dataclass(frozen=True, slots=True)
class BanRecord:
    """One row of a channel's ban list: ``ip`` is ``"*"`` for a name ban."""

    id: int
    ip: str
    name: str  # lower case
    reason: str
    bannedby: str


@dataclass(eq=False)
class Member:
    """A socket in the channel (``sid``) or a simulated user (``sid is None``)."""

    key: str
    ip: str
    sid: str | None = None
    name: str | None = None  # None until a successful login
    registered: bool = False  # logged in with an account
    global_rank: float = -1.0  # -1 anonymous, 0 guest, 1 registered account, 255 site admin
    rank: float = -1.0  # effective rank: max(global, channel), 1.5 while leader
    rank_before_leader: float | None = None
    afk: bool = False
    muted: bool = False
    smuted: bool = False
    queue_limiter: FloodLimiter | None = None
    inbox: list[tuple[str, Any]] = field(default_factory=list)  # simulated users only

    @property
    def lower(self) -> str:
        return (self.name or "").lower()


def cloak(ip: str) -> str:
    """A stable stand-in for CyTube's cloaked IP (the real one is an HMAC; only its shape matters)."""
    parts = ip.split(".")
    return ".".join([*parts[:2], *("x" * len(p) for p in parts[2:])]) if len(parts) == 4 else "cloaked"
