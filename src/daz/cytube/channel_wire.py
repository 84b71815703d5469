"""Channel-state events on the wire (playlist, playback, polls, users' meta, options, permissions,
MOTD, emotes) → frozen typed events. Pure; ``protocol.parse`` calls ``parse_channel`` and turns a
``shapes.Bad`` (or ``TypeError``/``ValueError``) into ``Malformed``, so a bad payload never reaches
the replica. Payload shapes are those measured in ../shared/cytube-protocol-actions.md.

This module sits beside ``protocol`` (not inside the ``channel`` package) because ``protocol``
imports it, and the ``channel`` package imports ``protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daz.cytube import shapes
from daz.cytube.shapes import Bad

MAX_TEXT = 10_000
MAX_NAME = 64
MAX_ITEMS = 5_000  # the server's playlist limit is 4000
MAX_POLL_OPTIONS = 200  # the server allows 50; leave room, refuse absurd payloads
MAX_MOTD = 100_000  # the server allows 20000 before sanitising
MAX_KEYS = 500
SECRET_KEYS = frozenset({"password", "pw"})


@dataclass(frozen=True, slots=True)
class Media:
    id: str
    type: str
    title: str
    seconds: float

    @property
    def live(self) -> bool:
        """A live item (``seconds`` 0) never sends ``mediaUpdate`` and never ends by itself."""
        return self.seconds <= 0


@dataclass(frozen=True, slots=True)
class PlaylistItem:
    uid: int
    media: Media
    temp: bool
    queueby: str


@dataclass(frozen=True, slots=True)
class PermissionsSet:
    """``setPermissions``: the FULL permission object (keys absent here are absent: nobody may)."""

    ranks: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class PlaylistLocked:
    locked: bool


@dataclass(frozen=True, slots=True)
class Emote:
    name: str
    image: str


@dataclass(frozen=True, slots=True)
class EmoteList:
    emotes: tuple[Emote, ...]


@dataclass(frozen=True, slots=True)
class EmoteUpdated:
    emote: Emote


@dataclass(frozen=True, slots=True)
class EmoteRemoved:
    name: str


@dataclass(frozen=True, slots=True)
class MotdSet:
    html: str


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """``channelOpts`` without its secret keys (the channel password arrives in clear)."""

    options: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class PlaylistMeta:
    count: int
    raw_time: float


@dataclass(frozen=True, slots=True)
class PlaylistReplaced:
    items: tuple[PlaylistItem, ...]


@dataclass(frozen=True, slots=True)
class CurrentSet:
    uid: int


@dataclass(frozen=True, slots=True)
class ItemQueued:
    item: PlaylistItem
    after: int | None  # None: "prepend"


@dataclass(frozen=True, slots=True)
class ItemDeleted:
    uid: int


@dataclass(frozen=True, slots=True)
class ItemMoved:
    uid: int
    after: int | str  # a uid, "prepend" or "append" (the server echoes the request)


@dataclass(frozen=True, slots=True)
class TempSet:
    uid: int
    temp: bool


@dataclass(frozen=True, slots=True)
class PollState:
    """``newPoll`` / ``updatePoll``. ``counts`` entries are None where the server hides them
    ("?"); ``obscured`` when any count came as a string ("?" or "3?")."""

    opened: bool  # True for newPoll, False for updatePoll
    title: str
    options: tuple[str, ...]
    counts: tuple[int | None, ...]
    obscured: bool
    initiator: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class PollClosed:
    pass


@dataclass(frozen=True, slots=True)
class LeaderSet:
    name: str | None  # None: cleared ("")


@dataclass(frozen=True, slots=True)
class UserRankSet:
    name: str
    rank: float


@dataclass(frozen=True, slots=True)
class UserAfkSet:
    name: str
    afk: bool


@dataclass(frozen=True, slots=True)
class UserMetaSet:
    """``setUserMeta``: the meta is shaped by the recipient's rank, so absent fields are None."""

    name: str
    afk: bool | None
    muted: bool | None
    smuted: bool | None


@dataclass(frozen=True, slots=True)
class UserProfileSet:
    name: str
    image: str
    text: str


@dataclass(frozen=True, slots=True)
class NotRegistered:
    pass


ChannelEvent = (
    PermissionsSet | PlaylistLocked | EmoteList | EmoteUpdated | EmoteRemoved | MotdSet
    | ChannelOptions | PlaylistMeta | PlaylistReplaced | CurrentSet | ItemQueued | ItemDeleted
    | ItemMoved | TempSet | PollState | PollClosed | LeaderSet | UserRankSet | UserAfkSet
    | UserMetaSet | UserProfileSet | NotRegistered
)

CHANNEL_EVENTS = frozenset({
    "setPermissions", "setPlaylistLocked", "emoteList", "updateEmote", "removeEmote", "setMotd",
    "channelOpts", "setPlaylistMeta", "playlist", "setCurrent", "queue", "delete", "moveVideo",
    "setTemp", "newPoll", "updatePoll", "closePoll", "setLeader", "setUserRank", "setAFK",
    "setUserMeta", "setUserProfile", "channelNotRegistered",
})


def parse_channel(name: str, data: Any) -> ChannelEvent | None:
    """The typed event for a channel-state event name, or None for any other name.
    Raises ``Bad`` (or TypeError/ValueError) for a payload of the wrong shape."""
    parser = _PARSERS.get(name)
    return None if parser is None else parser(data)


# parsers ---------------------------------------------------------------------------------------

def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise Bad(f"{what} is not a boolean")
    return value


def _uid(value: Any, what: str = "uid") -> int:
    if type(value) is not int or value < 0:
        raise Bad(f"{what} is not a non-negative integer")
    return value


def _list(data: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(data, list):
        raise Bad(f"{what} is not a list")
    if len(data) > limit:
        raise Bad(f"{what} has more than {limit} entries")
    return data


def media(data: Any) -> Media:
    o = shapes.obj(data)
    seconds = shapes.number(o, "seconds")
    if seconds < 0:
        raise Bad("seconds is negative")
    # `id` may be a number for some types on old servers; the wire form is a string.
    return Media(
        id=shapes.string(o, "id", MAX_TEXT), type=shapes.string(o, "type", MAX_NAME),
        title=shapes.string(o, "title", MAX_TEXT), seconds=seconds,
    )


def playlist_item(data: Any) -> PlaylistItem:
    o = shapes.obj(data)
    queueby = o.get("queueby", "")
    if not isinstance(queueby, str) or len(queueby) > MAX_NAME:
        raise Bad("queueby is not a name")
    return PlaylistItem(
        uid=_uid(o.get("uid")), media=media(o.get("media")),
        temp=_bool(o.get("temp", False), "temp"), queueby=queueby,
    )


def _permissions(data: Any) -> PermissionsSet:
    o = shapes.obj(data)
    if len(o) > MAX_KEYS:
        raise Bad("too many permission keys")
    ranks = []
    for key, value in o.items():
        if not shapes.is_number(value):
            raise Bad(f"permission {key[:MAX_NAME]} is not a number")
        ranks.append((key[:MAX_NAME], float(value)))
    return PermissionsSet(tuple(ranks))


def _emote(data: Any) -> Emote:
    o = shapes.obj(data)
    return Emote(shapes.string(o, "name", MAX_TEXT), shapes.string(o, "image", MAX_TEXT))


def _options(data: Any) -> ChannelOptions:
    o = shapes.obj(data)
    if len(o) > MAX_KEYS:
        raise Bad("too many channel options")
    return ChannelOptions(tuple((k[:MAX_NAME], v) for k, v in o.items() if k not in SECRET_KEYS))


def _motd(data: Any) -> MotdSet:
    if not isinstance(data, str) or len(data) > MAX_MOTD:
        raise Bad("motd is not a string of at most 100000 characters")
    return MotdSet(data)


def _playlist_meta(data: Any) -> PlaylistMeta:
    o = shapes.obj(data)
    count = shapes.integer(o, "count")
    if count < 0:
        raise Bad("count is negative")
    return PlaylistMeta(count, shapes.number(o, "rawTime"))


def _queue(data: Any) -> ItemQueued:
    o = shapes.obj(data)
    after = o.get("after")
    return ItemQueued(playlist_item(o.get("item")), None if after == "prepend" else _uid(after, "after"))


def _moved(data: Any) -> ItemMoved:
    o = shapes.obj(data)
    after = o.get("after")
    return ItemMoved(_uid(o.get("from"), "from"),
                     after if after in ("prepend", "append") else _uid(after, "after"))


def _count(value: Any) -> int | None:
    if shapes.is_number(value) and not isinstance(value, bool):
        if value < 0:
            raise Bad("a poll count is negative")
        return int(value)
    if isinstance(value, str) and len(value) <= 20 and value.endswith("?"):
        # "?" for viewers who may not see hidden counts; "3?" for those who may.
        digits = value[:-1]
        return int(digits) if digits.isdigit() else None
    raise Bad("a poll count is neither a number nor a hidden count")


def _poll(opened: bool) -> Any:
    def parse(data: Any) -> PollState:
        o = shapes.obj(data)
        options = tuple(
            _text(x, "option") for x in _list(o.get("options"), "options", MAX_POLL_OPTIONS)
        )
        raw_counts = _list(o.get("counts"), "counts", MAX_POLL_OPTIONS)
        if len(raw_counts) != len(options):
            raise Bad("counts and options differ in length")
        initiator = o.get("initiator", "")
        if not isinstance(initiator, str) or len(initiator) > MAX_NAME:
            raise Bad("initiator is not a name")
        stamp = o.get("timestamp", 0)
        return PollState(
            opened=opened, title=shapes.string(o, "title", MAX_TEXT), options=options,
            counts=tuple(_count(c) for c in raw_counts),
            obscured=any(isinstance(c, str) for c in raw_counts), initiator=initiator,
            timestamp_ms=int(stamp) if shapes.is_number(stamp) else 0,
        )
    return parse


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise Bad(f"{what} is not a string")
    return value


def _leader(data: Any) -> LeaderSet:
    if not isinstance(data, str) or len(data) > MAX_NAME:
        raise Bad("leader is not a name")
    return LeaderSet(data or None)


def _rank(data: Any) -> UserRankSet:
    o = shapes.obj(data)
    rank = o.get("rank")
    if not shapes.is_number(rank):
        raise Bad("rank is not a finite number")
    return UserRankSet(shapes.string(o, "name", MAX_NAME), float(rank))


def _afk(data: Any) -> UserAfkSet:
    o = shapes.obj(data)
    return UserAfkSet(shapes.string(o, "name", MAX_NAME), _bool(o.get("afk"), "afk"))


def _optional_bool(meta: dict[str, Any], key: str) -> bool | None:
    value = meta.get(key)
    return None if value is None else _bool(value, key)


def _user_meta(data: Any) -> UserMetaSet:
    o = shapes.obj(data)
    meta = shapes.obj(o.get("meta"))
    return UserMetaSet(
        shapes.string(o, "name", MAX_NAME), _optional_bool(meta, "afk"),
        _optional_bool(meta, "muted"), _optional_bool(meta, "smuted"),
    )


def profile(data: Any) -> tuple[str, str]:
    """A user's ``profile {image, text}``; missing or null fields are empty."""
    if data is None:
        return "", ""
    o = shapes.obj(data)
    image, text = o.get("image") or "", o.get("text") or ""
    if not isinstance(image, str) or not isinstance(text, str):
        raise Bad("profile image/text is not a string")
    return image[:MAX_TEXT], text[:MAX_TEXT]


def _user_profile(data: Any) -> UserProfileSet:
    o = shapes.obj(data)
    image, text = profile(o.get("profile"))
    return UserProfileSet(shapes.string(o, "name", MAX_NAME), image, text)


_PARSERS: dict[str, Any] = {
    "setPermissions": _permissions,
    "setPlaylistLocked": lambda d: PlaylistLocked(_bool(d, "setPlaylistLocked")),
    "emoteList": lambda d: EmoteList(tuple(_emote(e) for e in _list(d, "emoteList", MAX_ITEMS))),
    "updateEmote": lambda d: EmoteUpdated(_emote(d)),
    "removeEmote": lambda d: EmoteRemoved(shapes.string(shapes.obj(d), "name", MAX_TEXT)),
    "setMotd": _motd,
    "channelOpts": _options,
    "setPlaylistMeta": _playlist_meta,
    "playlist": lambda d: PlaylistReplaced(tuple(playlist_item(i) for i in _list(d, "playlist", MAX_ITEMS))),
    "setCurrent": lambda d: CurrentSet(_uid(d)),
    "queue": _queue,
    "delete": lambda d: ItemDeleted(_uid(shapes.obj(d).get("uid"))),
    "moveVideo": _moved,
    "setTemp": lambda d: TempSet(_uid(shapes.obj(d).get("uid")), _bool(shapes.obj(d).get("temp"), "temp")),
    "newPoll": _poll(True),
    "updatePoll": _poll(False),
    "closePoll": lambda d: PollClosed(),
    "setLeader": _leader,
    "setUserRank": _rank,
    "setAFK": _afk,
    "setUserMeta": _user_meta,
    "setUserProfile": _user_profile,
    "channelNotRegistered": lambda d: NotRegistered(),
}
