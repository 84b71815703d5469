"""CyTube's wire protocol, pure: server payloads → frozen typed events, and outbound payloads.

``parse(name, data)`` never raises. A payload of the wrong shape (wrong types, missing keys, huge
strings) becomes ``Malformed`` with the event name and the raw size; an event we do not model
becomes ``GenericEvent``. Channel-state events (playlist, polls, users' meta, options,
permissions...) are typed by ``channel_wire`` and kept in the room's replica
(``daz.cytube.channel``). Chat text arrives HTML-escaped (links as ``<a href>``): ``text`` is the
decoded plain text for plugins, ``raw`` is what the server sent.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from daz.cytube import channel_wire as cw
from daz.cytube import shapes
from daz.cytube.ban_wire import BAN_EVENTS, Banlist, BanRemoved, parse_ban_event

MAX_TEXT_CHARS = 10_000  # the server cuts chat at 320 chars; escaping and links can grow it a little
MAX_NAME_CHARS = 64
MAX_LIST_ITEMS = 5_000
CHAT_LIMIT_CHARS = 320
LIVE_MEDIA_TYPES = frozenset({"cu", "tw", "li", "us", "jt", "im", "hb"})

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    username: str
    text: str
    raw: str
    time_ms: int
    action: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    username: str
    to: str
    text: str
    raw: str
    time_ms: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserJoined:
    name: str
    rank: float
    afk: bool = False
    muted: bool = False
    smuted: bool = False  # only moderators' views carry it
    profile_image: str = ""
    profile_text: str = ""


@dataclass(frozen=True, slots=True)
class UserLeft:
    name: str


@dataclass(frozen=True, slots=True)
class UserList:
    users: tuple[UserJoined, ...]


@dataclass(frozen=True, slots=True)
class UserCount:
    count: int


@dataclass(frozen=True, slots=True)
class MediaChanged:
    media_id: str
    media_type: str
    title: str
    seconds: float
    current_time: float
    paused: bool

    @property
    def live(self) -> bool:
        """Live embeds send no ``mediaUpdate`` at all; the media timeout must not apply to them."""
        return self.seconds <= 0 or self.media_type in LIVE_MEDIA_TYPES


@dataclass(frozen=True, slots=True)
class MediaUpdate:
    current_time: float
    paused: bool


@dataclass(frozen=True, slots=True)
class KickNotice:
    reason: str


@dataclass(frozen=True, slots=True)
class LoginResult:
    success: bool
    name: str | None
    guest: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class Cooldown:
    milliseconds: int


@dataclass(frozen=True, slots=True)
class Rank:
    rank: float


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    message: str


@dataclass(frozen=True, slots=True)
class NeedPassword:
    wrong: bool


@dataclass(frozen=True, slots=True)
class PasswordAccepted:
    pass


@dataclass(frozen=True, slots=True)
class GenericEvent:
    """Any other event, passed through. Channel-state events (``channel_wire``) are typed, and
    ``channelOpts`` loses its secret keys there."""

    name: str
    data: Any


_NOT_SEGMENT = re.compile(r"[^A-Za-z0-9_-]")


def bus_segment(name: str) -> str:
    """A server-chosen event name as exactly ONE bus segment (``cytube.<segment>``): dots and
    pattern characters from the wire must not add segments or wildcards to our event names."""
    return _NOT_SEGMENT.sub("_", name) or "_"


@dataclass(frozen=True, slots=True)
class Malformed:
    event: str
    size: int
    detail: str


ServerEvent = (
    ChatMessage | PrivateMessage | UserJoined | UserLeft | UserList | UserCount | MediaChanged
    | MediaUpdate | KickNotice | LoginResult | Cooldown | Rank | ErrorMessage | NeedPassword
    | PasswordAccepted | GenericEvent | Malformed | cw.ChannelEvent | Banlist | BanRemoved
)

KNOWN_EVENTS = frozenset({
    "chatMsg", "pm", "addUser", "userLeave", "userlist", "usercount", "changeMedia", "mediaUpdate",
    "kick", "login", "cooldown", "rank", "errorMsg", "needPassword", "cancelNeedPassword",
    "setPermissions", "setPlaylistLocked", "emoteList", "drinkCount", "channelCSSJS", "setMotd",
    "channelOpts", "setPlaylistMeta", "playlist", "setCurrent", "channelNotRegistered",
    "setUserRank", "setAFK", "queue", "queueFail", "delete", "spamFiltered", "clearchat",
    "announcement", "newPoll", "updatePoll", "closePoll", *cw.CHANNEL_EVENTS, *BAN_EVENTS,
})


_Bad = shapes.Bad


def metric_event_label(name: str) -> str:
    """Bounded label for ``daz_messages_received_total{event}``: unknown names become ``other``."""
    return name if name in KNOWN_EVENTS else "other"


def raw_size(data: Any) -> int:
    if isinstance(data, str | bytes):
        return len(data)
    try:
        return len(json.dumps(data, default=str))
    except (TypeError, ValueError):
        return 0


def parse(name: str, data: Any) -> ServerEvent:
    """Turn one server event into a typed event; never raises."""
    try:
        return _parse(name, data)
    except (_Bad, TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        return Malformed(event=name[:MAX_NAME_CHARS], size=raw_size(data), detail=str(exc)[:200])


def _parse(name: str, data: Any) -> ServerEvent:
    if name == "chatMsg":
        obj = _obj(data)
        raw = _str(obj, "msg", MAX_TEXT_CHARS)
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise _Bad("meta is not an object")
        return ChatMessage(
            username=_str(obj, "username", MAX_NAME_CHARS), text=decode_text(raw), raw=raw,
            time_ms=_int(obj, "time"), action=bool(meta.get("action", False)), meta=meta,
        )
    if name == "pm":
        obj = _obj(data)
        raw = _str(obj, "msg", MAX_TEXT_CHARS)
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise _Bad("meta is not an object")
        return PrivateMessage(
            username=_str(obj, "username", MAX_NAME_CHARS), to=_str(obj, "to", MAX_NAME_CHARS),
            text=decode_text(raw), raw=raw, time_ms=_int(obj, "time"), meta=meta,
        )
    if name == "addUser":
        return _user(data)
    if name == "userLeave":
        return UserLeft(_str(_obj(data), "name", MAX_NAME_CHARS))
    if name == "userlist":
        if not isinstance(data, list) or len(data) > MAX_LIST_ITEMS:
            raise _Bad("userlist is not a list of users")
        return UserList(tuple(_user(item) for item in data))
    if name == "usercount":
        if isinstance(data, bool) or not isinstance(data, int) or data < 0:
            raise _Bad("usercount is not a non-negative integer")
        return UserCount(data)
    if name == "changeMedia":
        obj = _obj(data)
        return MediaChanged(
            media_id=_str(obj, "id", MAX_TEXT_CHARS), media_type=_str(obj, "type", MAX_NAME_CHARS),
            title=_str(obj, "title", MAX_TEXT_CHARS), seconds=_num(obj, "seconds"),
            current_time=_num(obj, "currentTime"), paused=bool(obj.get("paused", False)),
        )
    if name == "mediaUpdate":
        obj = _obj(data)
        return MediaUpdate(current_time=_num(obj, "currentTime"), paused=bool(obj.get("paused", False)))
    if name == "kick":
        obj = _obj(data)
        return KickNotice(str(obj.get("reason", ""))[:MAX_TEXT_CHARS])
    if name == "login":
        obj = _obj(data)
        success = obj.get("success")
        if not isinstance(success, bool):
            raise _Bad("login.success is not a boolean")
        user = obj.get("name")
        error = obj.get("error")
        return LoginResult(
            success=success, name=str(user)[:MAX_NAME_CHARS] if user is not None else None,
            guest=bool(obj.get("guest", False)),
            error=str(error)[:MAX_TEXT_CHARS] if error is not None else None,
        )
    if name == "cooldown":
        if not _is_number(data) or data < 0:
            raise _Bad("cooldown is not a number of milliseconds")
        return Cooldown(int(data))
    if name == "rank":
        if not _is_number(data):
            raise _Bad("rank is not a number")
        return Rank(float(data))
    if name == "errorMsg":
        return ErrorMessage(_str(_obj(data), "msg", MAX_TEXT_CHARS))
    if name == "needPassword":
        return NeedPassword(wrong=bool(data))
    if name == "cancelNeedPassword":
        return PasswordAccepted()
    channel_event = cw.parse_channel(name, data)
    if channel_event is not None:
        return channel_event
    ban_event = parse_ban_event(name, data)
    if ban_event is not None:
        return ban_event  # typed, so the ban list's ip field never reaches the bus as a GenericEvent
    if isinstance(data, str) and len(data) > MAX_TEXT_CHARS * 10:
        raise _Bad("string payload too large")
    return GenericEvent(name[:MAX_NAME_CHARS], data)


_obj = shapes.obj
_str = shapes.string
_is_number = shapes.is_number
_int = shapes.integer
_num = shapes.number


def _user(data: Any) -> UserJoined:
    obj = _obj(data)
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise _Bad("user meta is not an object")
    rank = obj.get("rank", 0)
    if not _is_number(rank):
        raise _Bad("rank is not a finite number")
    image, text = cw.profile(obj.get("profile"))
    return UserJoined(
        name=_str(obj, "name", MAX_NAME_CHARS), rank=float(rank),
        afk=bool(meta.get("afk", False)), muted=bool(meta.get("muted", False)),
        smuted=bool(meta.get("smuted", False)), profile_image=image, profile_text=text,
    )


# text ------------------------------------------------------------------------------------------

def decode_text(raw: str) -> str:
    """Server chat HTML → plain text: tags removed (links keep their text), entities decoded."""
    if "<" not in raw and "&" not in raw:
        return raw  # most lines: nothing to strip or decode, and this is the per-line hot path
    return html.unescape(_TAG.sub("", raw))


# A registered channel's default chat filters (CyTube filters.js) turn `code`, *bold*, _italic_,
# ~~strike~~ and [sp]...[/sp] into tags, so the echo (tags stripped) has lost the markers: "a *b*"
# comes back as "a <strong>b</strong>" (measured on 3.86). Both keys drop every marker character,
# paired or not, so a line is recognised with or without the filters.
_FILTER_MARKS = re.compile(r"\[/?sp\]|[*_`~]", re.IGNORECASE)


def sent_key(text: str) -> str:
    """The comparable form of a line we sent (the server cuts at 320 characters before escaping)."""
    return _SPACE.sub(" ", _FILTER_MARKS.sub("", text[:CHAT_LIMIT_CHARS])).strip()


def echo_key(raw: str) -> str:
    """The comparable form of an echoed line: the server's HTML decoded, filter markers dropped
    (as in ``sent_key``), whitespace folded."""
    return _SPACE.sub(" ", _FILTER_MARKS.sub("", decode_text(raw))).strip()


def split_line(text: str, limit: int = CHAT_LIMIT_CHARS, *, guarded: bool = False) -> list[str]:
    """Split ``text`` into lines of at most ``limit`` characters, at whitespace where possible.

    ``guarded``: a line that will start with ``/`` keeps one character free for ``COMMAND_GUARD``
    (see ``chat_lines``), so the guarded line still fits the server's cut."""
    parts: list[str] = []
    for paragraph in text.splitlines():
        rest = paragraph.strip()
        while True:
            room = limit - len(COMMAND_GUARD) if guarded and rest.startswith("/") else limit
            if len(rest) <= room:
                break
            cut = rest.rfind(" ", 0, room + 1)
            if cut <= room // 2:
                cut = room
            parts.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip()
        if rest:
            parts.append(rest)
    return parts


# chat commands ---------------------------------------------------------------------------------
# CyTube runs a chat line as a command when its FIRST character is "/" (no trimming before the
# check; control characters become spaces, so they cannot produce one). A command word it does not
# know is broadcast as text, but the set of command words grows with server modules, so every
# leading "/" is guarded, not a list. A leading space is the guard: the server keeps it (it only
# trims for its blank-line check), HTML shows nothing of it, and echo matching folds it away.
COMMAND_GUARD = " "
ACTION_PREFIX = "/me "  # CyTube's emote command; it runs its text through the command check again


def neutralise_command(line: str) -> str:
    """``line`` as CyTube will show it as text, never run it as a chat command."""
    return COMMAND_GUARD + line if line.startswith("/") else line


def chat_lines(text: str, limit: int = CHAT_LIMIT_CHARS, *, action: bool = False) -> list[str]:
    """The wire lines of a chat send: split at ``limit``, every line guarded against running as a
    command; ``action``: each line a ``/me`` emote (its text guarded too: CyTube re-checks it)."""
    prefix = ACTION_PREFIX if action else ""
    return [prefix + neutralise_command(part) for part in split_line(text, limit - len(prefix), guarded=True)]


def chat_key(text: str) -> str:
    """The comparable form of a chat line we sent: CyTube cuts it, then a ``/me`` loses its command
    word (the echo carries the text alone, flagged as an action)."""
    cut = text[:CHAT_LIMIT_CHARS]
    return sent_key(cut.removeprefix(ACTION_PREFIX))


# outbound payloads ----------------------------------------------------------------------------

def join_payload(channel: str) -> dict[str, Any]:
    return {"name": channel}


def login_payload(name: str, password: str | None = None) -> dict[str, Any]:
    return {"name": name} if password is None else {"name": name, "pw": password}


def chat_payload(text: str) -> dict[str, Any]:
    return {"msg": text, "meta": {}}


def pm_payload(to: str, text: str) -> dict[str, Any]:
    return {"to": to, "msg": text, "meta": {}}
