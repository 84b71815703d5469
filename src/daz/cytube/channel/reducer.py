"""``apply(state, event, at=) -> state``: the pure reducer of the channel replica.

Every event returns a new ``ChannelState`` (or the same object when nothing changed), so a
snapshot handed to a plugin never changes under it. Events the replica does not model, and
``Malformed`` events, return the state unchanged. Semantically odd but well-formed events (a
``delete`` of an unknown uid, a ``queue`` after an unknown uid) are applied the way the real
client would, never raising and always keeping the invariants: uids unique, ``current_uid`` on
the playlist or None, one user per name, ``usercount >= 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from immutables import Map

from daz.cytube import channel_wire as cw
from daz.cytube import protocol as p
from daz.cytube.channel.state import ChannelState, Playback, Poll, User, evolve

Reducer = Callable[[ChannelState, Any, float], ChannelState]


def apply(state: ChannelState, event: object, at: float = 0.0) -> ChannelState:
    """The state after ``event``, which arrived at monotonic time ``at`` (used by playback)."""
    handler = _HANDLERS.get(type(event))
    return state if handler is None else handler(state, event, at)


def apply_all(state: ChannelState, events: Iterable[object], at: float = 0.0) -> ChannelState:
    for event in events:
        state = apply(state, event, at)
    return state


# playlist helpers ------------------------------------------------------------------------------

# The playlist is a tuple (ordered, immutable) with two indexes kept alongside it: uid -> item and
# the uids in order. Single-item changes copy them (a memcpy-like slice and dict copy) instead of
# rebuilding them item by item; only a whole `playlist` frame rebuilds.

Items = tuple[cw.PlaylistItem, ...]


ByUid = Map[int, cw.PlaylistItem]


def _set_items(
    state: ChannelState, items: Items, uids: tuple[int, ...], by_uid: ByUid, **changes: Any,
) -> ChannelState:
    current = changes.get("current_uid", state.current_uid)
    if current is not None and current not in by_uid:
        # The current item left the playlist (deleted, or the last temp item ended: the server
        # sends only `delete` + `setPlaylistMeta`, no changeMedia): nothing plays now.
        changes["current_uid"] = None
        changes["playback"] = None
    return evolve(state, items=items, _uids=uids, _by_uid=by_uid, **changes)


def _with_items(state: ChannelState, items: Items, **changes: Any) -> ChannelState:
    by_uid = {it.uid: it for it in items}
    if len(by_uid) != len(items):  # a duplicated uid: keep the first copy (uids are unique)
        by_uid = {}
        for it in items:
            by_uid.setdefault(it.uid, it)
        items = tuple(by_uid.values())
    return _set_items(state, items, tuple(by_uid), Map(by_uid), **changes)


Parts = tuple[Items, tuple[int, ...], ByUid]


def _without(state: ChannelState, uid: int) -> Parts:
    pos = state._uids.index(uid)
    return (state.items[:pos] + state.items[pos + 1:], state._uids[:pos] + state._uids[pos + 1:],
            state._by_uid.delete(uid))


def _insert(parts: Parts, pos: int, item: cw.PlaylistItem) -> Parts:
    items, uids, by_uid = parts
    by_uid = by_uid.set(item.uid, item)
    if pos == len(uids):  # `queue` at the end, the common case: one copy, not two
        return (*items, item), (*uids, item.uid), by_uid
    return (*items[:pos], item, *items[pos:]), (*uids[:pos], item.uid, *uids[pos:]), by_uid


def _after(uids: tuple[int, ...], after: int | str | None) -> int | None:
    """The position after ``after`` (None: prepend; "append": the end); None if it is unknown."""
    if after is None or after == "prepend":
        return 0
    if after == "append" or (uids and after == uids[-1]):
        return len(uids)  # the common case, `queue` at the end: no search
    try:
        return uids.index(after) + 1
    except ValueError:
        return None


def _playlist(state: ChannelState, e: cw.PlaylistReplaced, at: float) -> ChannelState:
    if e.items == state.items:
        # The server re-sends the same playlist right after our login (once it knows our channel
        # rank): nothing changed, so no new state and no channel.playlist.changed.
        return state
    return _with_items(state, e.items)


def _queue(state: ChannelState, e: cw.ItemQueued, at: float) -> ChannelState:
    if e.item.uid in state._by_uid:
        parts = _without(state, e.item.uid)
    else:
        parts = (state.items, state._uids, state._by_uid)
    pos = _after(parts[1], e.after)
    items, uids, by_uid = _insert(parts, len(parts[1]) if pos is None else pos, e.item)
    return _set_items(state, items, uids, by_uid)


def _delete(state: ChannelState, e: cw.ItemDeleted, at: float) -> ChannelState:
    if e.uid not in state._by_uid:
        return state
    return _set_items(state, *_without(state, e.uid))


def _move(state: ChannelState, e: cw.ItemMoved, at: float) -> ChannelState:
    moving = state.item(e.uid)
    if moving is None or e.after == e.uid:
        return state
    parts = _without(state, e.uid)
    pos = _after(parts[1], e.after)
    if pos is None:
        return state  # the server refuses a move after an unknown uid
    return _set_items(state, *_insert(parts, pos, moving))


def _temp(state: ChannelState, e: cw.TempSet, at: float) -> ChannelState:
    old = state.item(e.uid)
    if old is None or old.temp == e.temp:
        return state
    new = replace(old, temp=e.temp)
    pos = state._uids.index(e.uid)
    return _set_items(state, (*state.items[:pos], new, *state.items[pos + 1:]), state._uids,
                      state._by_uid.set(e.uid, new))


def _meta(state: ChannelState, e: cw.PlaylistMeta, at: float) -> ChannelState:
    if e.count == 0:
        # An empty playlist plays nothing. This is also the only end-of-playlist signal for a
        # bot that may not see the playlist (it gets setPlaylistMeta but never playlist/delete).
        return _with_items(state, (), playlist_count=0, playlist_seconds=e.raw_time,
                           current_uid=None, playback=None)
    return evolve(state, playlist_count=e.count, playlist_seconds=e.raw_time)


def _current(state: ChannelState, e: cw.CurrentSet, at: float) -> ChannelState:
    if state.current_uid == e.uid:
        return state
    # An unknown uid (e.g. we may not see the playlist) leaves no current item; the playback
    # that follows in changeMedia still says what plays.
    return evolve(state, current_uid=e.uid if state.item(e.uid) is not None else None)


def _change_media(state: ChannelState, e: p.MediaChanged, at: float) -> ChannelState:
    media = cw.Media(id=e.media_id, type=e.media_type, title=e.title, seconds=e.seconds)
    return evolve(state, playback=Playback(media, e.current_time, e.paused, at))


def _media_update(state: ChannelState, e: p.MediaUpdate, at: float) -> ChannelState:
    if state.playback is None:
        return state  # an update for media we never saw start: nothing to anchor it to
    return evolve(state, playback=replace(state.playback, position=e.current_time, paused=e.paused, at=at))


def _locked(state: ChannelState, e: cw.PlaylistLocked, at: float) -> ChannelState:
    return state if state.locked == e.locked else evolve(state, locked=e.locked)


# users ------------------------------------------------------------------------------------------

def _user_of(e: p.UserJoined) -> User:
    return User(e.name, e.rank, e.afk, e.muted, e.smuted, e.profile_image, e.profile_text)


def _userlist(state: ChannelState, e: p.UserList, at: float) -> ChannelState:
    return evolve(state, users=Map({u.name.lower(): _user_of(u) for u in e.users}))


def _add_user(state: ChannelState, e: p.UserJoined, at: float) -> ChannelState:
    return evolve(state, users=state.users.set(e.name.lower(), _user_of(e)))


def _user_left(state: ChannelState, e: p.UserLeft, at: float) -> ChannelState:
    key = e.name.lower()
    if key not in state.users:
        return state
    leader = None if state.leader is not None and state.leader.lower() == key else state.leader
    return evolve(state, users=state.users.delete(key), leader=leader)


def _update_user(state: ChannelState, name: str, **changes: Any) -> ChannelState:
    key = name.lower()
    old = state.users.get(key)
    if old is None:
        return state
    new = replace(old, **changes)
    if new == old:
        return state
    return evolve(state, users=state.users.set(key, new))


def _user_rank(state: ChannelState, e: cw.UserRankSet, at: float) -> ChannelState:
    return _update_user(state, e.name, rank=e.rank)


def _user_afk(state: ChannelState, e: cw.UserAfkSet, at: float) -> ChannelState:
    return _update_user(state, e.name, afk=e.afk)


def _user_meta(state: ChannelState, e: cw.UserMetaSet, at: float) -> ChannelState:
    changes = {k: v for k, v in (("afk", e.afk), ("muted", e.muted), ("smuted", e.smuted)) if v is not None}
    return _update_user(state, e.name, **changes)


def _user_profile(state: ChannelState, e: cw.UserProfileSet, at: float) -> ChannelState:
    return _update_user(state, e.name, profile_image=e.image, profile_text=e.text)


def _usercount(state: ChannelState, e: p.UserCount, at: float) -> ChannelState:
    return evolve(state, usercount=max(0, e.count))


def _leader(state: ChannelState, e: cw.LeaderSet, at: float) -> ChannelState:
    return evolve(state, leader=e.name)


def _rank(state: ChannelState, e: p.Rank, at: float) -> ChannelState:
    # `rank` is our effective rank, the same number CyTube then broadcasts as our setUserRank. Our
    # own user entry takes it at once: after a login the channel-rank lookup sends `rank 4`, then the
    # playlist again, and only then setUserRank; a replica completed at that `rank` would otherwise
    # list the bot at its addUser rank (1), and room.resynced reported a rank change 4 -> 1 that
    # never happened (seen on CyTube 3.86 with a channel-rank-4 account).
    state = evolve(state, self_rank=e.rank)
    return _update_user(state, state.self_name, rank=e.rank) if state.self_name else state


def _login(state: ChannelState, e: p.LoginResult, at: float) -> ChannelState:
    if not e.success or e.name is None:
        return state
    return evolve(state, self_name=e.name)


# polls, channel settings ------------------------------------------------------------------------

def _poll(state: ChannelState, e: cw.PollState, at: float) -> ChannelState:
    poll = Poll(e.title, e.options, e.counts, e.obscured, e.initiator, e.timestamp_ms)
    return evolve(state, poll=poll)


def _poll_closed(state: ChannelState, e: cw.PollClosed, at: float) -> ChannelState:
    return state if state.poll is None else evolve(state, poll=None)


def _permissions(state: ChannelState, e: cw.PermissionsSet, at: float) -> ChannelState:
    # The full object every time: keys absent from it are absent (nobody may use them).
    return evolve(state, permissions=MappingProxyType(dict(e.ranks)))


def _options(state: ChannelState, e: cw.ChannelOptions, at: float) -> ChannelState:
    return evolve(state, options=MappingProxyType(dict(e.options)))


def _motd(state: ChannelState, e: cw.MotdSet, at: float) -> ChannelState:
    return evolve(state, motd=e.html)


def _emotes(state: ChannelState, e: cw.EmoteList, at: float) -> ChannelState:
    return evolve(state, emotes=e.emotes)


def _emote_updated(state: ChannelState, e: cw.EmoteUpdated, at: float) -> ChannelState:
    rest = tuple(x for x in state.emotes if x.name != e.emote.name)
    return evolve(state, emotes=(*rest, e.emote))


def _emote_removed(state: ChannelState, e: cw.EmoteRemoved, at: float) -> ChannelState:
    return evolve(state, emotes=tuple(x for x in state.emotes if x.name != e.name))


def _not_registered(state: ChannelState, e: cw.NotRegistered, at: float) -> ChannelState:
    return evolve(state, registered=False)


_HANDLERS: dict[type, Reducer] = {
    cw.PlaylistReplaced: _playlist,
    cw.ItemQueued: _queue,
    cw.ItemDeleted: _delete,
    cw.ItemMoved: _move,
    cw.TempSet: _temp,
    cw.PlaylistMeta: _meta,
    cw.CurrentSet: _current,
    cw.PlaylistLocked: _locked,
    p.MediaChanged: _change_media,
    p.MediaUpdate: _media_update,
    p.UserList: _userlist,
    p.UserJoined: _add_user,
    p.UserLeft: _user_left,
    cw.UserRankSet: _user_rank,
    cw.UserAfkSet: _user_afk,
    cw.UserMetaSet: _user_meta,
    cw.UserProfileSet: _user_profile,
    p.UserCount: _usercount,
    cw.LeaderSet: _leader,
    p.Rank: _rank,
    p.LoginResult: _login,
    cw.PollState: _poll,
    cw.PollClosed: _poll_closed,
    cw.PermissionsSet: _permissions,
    cw.ChannelOptions: _options,
    cw.MotdSet: _motd,
    cw.EmoteList: _emotes,
    cw.EmoteUpdated: _emote_updated,
    cw.EmoteRemoved: _emote_removed,
    cw.NotRegistered: _not_registered,
}
