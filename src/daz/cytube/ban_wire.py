"""CyTube's ban list on the wire, pure: ``banlist`` and ``banlistRemove`` → frozen typed events.

The server sends ``banlist [{id, ip, name, reason, bannedby}]`` only in answer to ``requestBanlist``,
and only to users with the ``ban`` permission in a registered channel (kickban.js sendBanlist); it
sends ``banlistRemove {id, name}`` to those users after an ``unban`` (echoing the request as is).

The ``ip`` field is cloaked for most ranks but the REAL address for a site admin (rank >= 255), so it
is dropped here, at the boundary: a ``BanEntry`` keeps only whether the row bans an address
(``ip_ban``). Nothing downstream (bus events, logs, plugins) can leak what it never received.
``protocol.parse`` turns a ``Bad`` shape into ``Malformed`` (reported as ``protocol.malformed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daz.cytube import shapes
from daz.cytube.shapes import Bad

MAX_NAME = 64
MAX_REASON = 1_000  # the server stores at most 255 characters
MAX_BANS = 100_000  # a big channel's list is long; an absurd payload is refused, not parsed
BAN_EVENTS = frozenset({"banlist", "banlistRemove"})


@dataclass(frozen=True, slots=True)
class BanEntry:
    """One row of a channel's ban list. ``name`` is as the server stores it (lower case; "" for an
    address ban made without a name); ``ip_ban``: the row bans an address, not only the name."""

    id: int
    name: str
    reason: str
    banned_by: str
    ip_ban: bool


@dataclass(frozen=True, slots=True)
class Banlist:
    """The server's answer to ``requestBanlist``: every ban row of the channel, in the server's order."""

    entries: tuple[BanEntry, ...]

    def named(self, name: str) -> tuple[BanEntry, ...]:
        """The rows banning ``name``, compared case-insensitively (the server lower-cases the names
        it bans; an ``/ipban`` leaves one row per address plus the name row, all under the name)."""
        lower = name.lower()
        return tuple(entry for entry in self.entries if entry.name.lower() == lower)


@dataclass(frozen=True, slots=True)
class BanRemoved:
    """``banlistRemove``: ban ``id`` was lifted (sent for any id asked, even one that no longer existed)."""

    id: int
    name: str


def parse_ban_event(name: str, data: Any) -> Banlist | BanRemoved | None:
    """``banlist``/``banlistRemove`` typed; None for any other event. Raises ``Bad`` on a bad shape."""
    if name == "banlist":
        if not isinstance(data, list) or len(data) > MAX_BANS:
            raise Bad("banlist is not a list of bans")
        return Banlist(tuple(_entry(item) for item in data))
    if name == "banlistRemove":
        obj = shapes.obj(data)
        return BanRemoved(_id(obj.get("id")), shapes.string(obj, "name", MAX_NAME))
    return None


def _id(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise Bad("ban id is not an integer >= 0")
    return value


def _entry(data: Any) -> BanEntry:
    obj = shapes.obj(data)
    ip = obj.get("ip")
    if not isinstance(ip, str):
        raise Bad("ban ip is not a string")  # never the value: it may be a real address
    # The server passes the stored column through unchecked: a null there is no reason, not a bad frame.
    reason = "" if obj.get("reason") is None else shapes.string(obj, "reason", MAX_REASON)
    return BanEntry(
        id=_id(obj.get("id")), name=shapes.string(obj, "name", MAX_NAME), reason=reason,
        banned_by=shapes.string(obj, "bannedby", MAX_NAME), ip_ban=ip != "*",
    )
