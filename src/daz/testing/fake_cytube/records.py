"""Ground-truth records the fake server keeps for tests (plain frozen dataclasses, easy to compare)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# Exact strings of the real server (measured on CyTube 3.86; see ../shared/cytube-protocol.md).
RATE_LIMIT_EXCEEDED = "Rate limit exceeded"
TOO_MANY_CONNECTIONS = "Too many connections from your IP address"
BANNED_ON_JOIN = "You are banned from this channel."
BANNED_BY_MODERATOR = "You're banned!"
DUPLICATE_LOGIN = "Duplicate login"


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """One line the server accepted (ground truth for tests): raw text as sent, cut at 320."""

    room: str
    username: str
    text: str
    time_ms: int
    to: str | None = None


@dataclass(frozen=True, slots=True)
class KickRecord:
    """A ``kick {reason}`` the server sent (then it disconnected the socket)."""

    reason: str
    ip: str
    room: str | None
    name: str | None
    time_ms: int


@dataclass(frozen=True, slots=True)
class LoginRefusal:
    """A ``login {success: false, error}`` the server sent."""

    error: str
    ip: str
    room: str | None
    name: str
    guest: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One event frame a client sent to the server (any event, accepted or dropped)."""

    event: str
    data: Any
    ip: str
    room: str | None
    name: str | None
    time_ms: int


def now_ms() -> int:
    return int(time.time() * 1000)
