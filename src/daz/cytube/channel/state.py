"""The immutable channel replica: ``ChannelState`` and its parts (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from immutables import Map

from daz.cytube.channel_wire import Emote, Media, PlaylistItem

EMPTY_MAP: Mapping[Any, Any] = MappingProxyType({})
EMPTY_USERS: Map[str, User] = Map()
EMPTY_ITEMS: Map[int, PlaylistItem] = Map()


def _empty() -> Mapping[Any, Any]:
    return EMPTY_MAP  # shared: a read-only mapping needs no copy per state

# Permission keys that the `o`-prefixed key also grants while the playlist is unlocked (open):
# CyTube's hasPermission: `node.indexOf("playlist") === 0 && openPlaylist && rank >= perms["o"+node]`.
_OPEN_PREFIX = "playlist"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    rank: float
    afk: bool = False
    muted: bool = False
    smuted: bool = False  # seen only by moderators
    profile_image: str = ""
    profile_text: str = ""


@dataclass(frozen=True, slots=True)
class Playback:
    """What the server's clock says about the current media.

    ``position`` is the server's ``currentTime`` as of ``at`` (the local monotonic time the frame
    arrived); the server sends no timestamp of its own, and it ticks ``mediaUpdate`` every 5 s.
    """

    media: Media
    position: float
    paused: bool
    at: float

    def position_now(self, now: float) -> float:
        """The position extrapolated to monotonic time ``now``: frozen while paused (including the
        3 s lead-in, which the server sends as paused at -3), never past the item's end."""
        if self.paused:
            return self.position
        pos = self.position + max(0.0, now - self.at)
        return min(pos, self.media.seconds) if self.media.seconds > 0 else pos


@dataclass(frozen=True, slots=True)
class Poll:
    title: str  # HTML-escaped as sent, links as <a>
    options: tuple[str, ...]
    counts: tuple[int | None, ...]  # None where the server hides the count from us
    obscured: bool
    initiator: str
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class ChannelState:
    # key: name.lower() (CyTube names are case-insensitive)
    # A HAMT (immutables.Map): a join or leave costs O(log n), not a copy of the whole userlist.
    users: Map[str, User] = EMPTY_USERS
    usercount: int = 0
    leader: str | None = None
    self_name: str | None = None  # from a successful `login`
    self_rank: float = -1.0  # from `rank` (the effective rank: max of channel and global)
    items: tuple[PlaylistItem, ...] = ()
    locked: bool = True
    playlist_count: int = 0  # from setPlaylistMeta (also sent to those who may not see the list)
    playlist_seconds: float = 0.0
    current_uid: int | None = None  # None, or the uid of an item in `items`
    playback: Playback | None = None
    poll: Poll | None = None
    options: Mapping[str, Any] = field(default_factory=_empty)
    permissions: Mapping[str, float] = field(default_factory=_empty)
    registered: bool = True  # False after `channelNotRegistered`
    motd: str = ""
    emotes: tuple[Emote, ...] = ()
    # Indexes of `items`, kept by the reducer: uid -> item, and the uids in order (a tuple of ints
    # is searched at C speed, where comparing PlaylistItems would call their Python __eq__).
    _by_uid: Map[int, PlaylistItem] = field(default=EMPTY_ITEMS, repr=False, compare=False)
    _uids: tuple[int, ...] = field(default=(), repr=False, compare=False)

    # lookups -----------------------------------------------------------------------------------
    def user(self, name: str) -> User | None:
        return self.users.get(name.lower())

    def item(self, uid: int) -> PlaylistItem | None:
        return self._by_uid.get(uid)

    def index(self, uid: int) -> int | None:
        """The 0-based position of ``uid`` on the playlist, or None."""
        return self._uids.index(uid) if uid in self._by_uid else None

    def find_media(self, media_type: str, media_id: str) -> PlaylistItem | None:
        for it in self.items:
            if it.media.id == media_id and it.media.type == media_type:
                return it
        return None

    @property
    def current(self) -> PlaylistItem | None:
        return None if self.current_uid is None else self._by_uid.get(self.current_uid)

    @property
    def playing(self) -> bool:
        """A non-live item is loaded and the server's clock runs: ``mediaUpdate`` is due every 5 s."""
        pb = self.playback
        return pb is not None and not pb.media.live and not pb.paused

    def position_now(self, now: float) -> float | None:
        return None if self.playback is None else self.playback.position_now(now)

    # permissions -------------------------------------------------------------------------------
    def permission(self, key: str) -> float | None:
        """The minimum rank for ``key``, or None when the channel has no such key (then NOBODY
        may: the server compares with ``undefined``, which is false even for rank 255)."""
        return self.permissions.get(key)

    def may(self, key: str, rank: float | None = None) -> bool:
        """May a user of ``rank`` (default: the bot's own) do ``key``? CyTube's hasPermission:
        while the playlist is unlocked, ``o<key>`` also grants ``playlist*`` keys."""
        r = self.self_rank if rank is None else rank
        if key.startswith(_OPEN_PREFIX) and not self.locked:
            open_rank = self.permissions.get("o" + key)
            if open_rank is not None and r >= open_rank:
                return True
        need = self.permissions.get(key)
        return need is not None and r >= need

    def rank_needed(self, key: str) -> float | None:
        """The lowest rank that may do ``key`` now (None: nobody), for error messages."""
        need = self.permissions.get(key)
        if key.startswith(_OPEN_PREFIX) and not self.locked:
            open_rank = self.permissions.get("o" + key)
            if open_rank is not None:
                return open_rank if need is None else min(need, open_rank)
        return need


_STATE_FIELDS = tuple(f.name for f in fields(ChannelState))
_STATE_FIELD_SET = frozenset(_STATE_FIELDS)
_new = object.__new__
_set = object.__setattr__


def evolve(state: ChannelState, **changes: Any) -> ChannelState:
    """``dataclasses.replace`` for ChannelState at half the cost (it runs once or twice per frame):
    no __init__ round trip, the fields copied straight into the new frozen instance."""
    if not changes.keys() <= _STATE_FIELD_SET:  # a misspelt field must not be a silent no-op
        raise TypeError(f"ChannelState has no field(s) {sorted(changes.keys() - _STATE_FIELD_SET)}")
    new = _new(ChannelState)
    for name in _STATE_FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(state, name))
    return new
