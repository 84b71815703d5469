"""Who is in a channel: members (sockets or simulated users) and ban records."""

from __future__ import annotations

import base64
import hashlib
import re
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


_IPV4 = re.compile(r"\d+\.\d+(\.\d+)?(\.\d+)?")
_IPV6 = re.compile(r"([0-9a-f]{1,4}:){1,7}[0-9a-f]{1,4}")


def cloak(ip: str) -> str:
    """CyTube's cloaked address (utilities.js ``cloakIP``): each segment becomes the first characters
    of base64(md5(the segments before it + this segment + its index)), 3 for IPv4 ("+Jk.f5d.aWs.iM7"
    for 10.1.0.67, measured on 3.86), 4 for the first four IPv6 groups; no segment is left in clear."""
    if _IPV4.search(ip):
        parts, width, sep = ip.split("."), 3, "."
    elif _IPV6.search(ip):
        parts, width, sep = ip.split(":")[:4], 4, ":"
    else:
        return ip
    cloaked, seen = [], ""
    for index, segment in enumerate(parts):
        digest = hashlib.md5(f"{seen}{segment}{index}".encode(), usedforsecurity=False).digest()
        cloaked.append(base64.b64encode(digest).decode()[:width])
        seen += segment
    cloaked += ["*"] * (4 - len(cloaked))
    return sep.join(cloaked)
