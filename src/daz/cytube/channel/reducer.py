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

from daz.cytube import channel_wire as cw
from daz.cytube import protocol as p
from daz.cytube.channel.state import ChannelState, Playback, Poll, User

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

def _with_items(state: ChannelState, items: tuple[cw.PlaylistItem, ...], **changes: Any) -> ChannelState:
    by_uid = {it.uid: it for it in items}
    if len(by_uid) != len(items):  # a duplicated uid: keep the first copy (uids are unique)
        by_uid = {}
        for it in items:
            by_uid.setdefault(it.uid, it)
        items = tuple(by_uid.values())
    current = changes.get("current_uid", state.current_uid)
    if current is not None and current not in by_uid:
        # The current item left the playlist (deleted, or the last temp item ended: the server
        # sends only `delete` + `setPlaylistMeta`, no changeMedia): nothing plays now.
        changes["current_uid"] = None
        changes["playback"] = None
    return replace(state, items=items, _by_uid=MappingProxyType(by_uid), **changes)


def _playlist(state: ChannelState, e: cw.PlaylistReplaced, at: float) -> ChannelState:
    return _with_items(state, e.items)


def _queue(state: ChannelState, e: cw.ItemQueued, at: float) -> ChannelState:
    items = tuple(it for it in state.items if it.uid != e.item.uid)
    if e.after is None:
        pos = 0
    else:
        pos = next((i + 1 for i, it in enumerate(items) if it.uid == e.after), len(items))
    return _with_items(state, (*items[:pos], e.item, *items[pos:]))


def _delete(state: ChannelState, e: cw.ItemDeleted, at: float) -> ChannelState:
    if state.item(e.uid) is None:
        return state
    return _with_items(state, tuple(it for it in state.items if it.uid != e.uid))


def _move(state: ChannelState, e: cw.ItemMoved, at: float) -> ChannelState:
    moving = state.item(e.uid)
    if moving is None or e.after == e.uid:
        return state
    rest = tuple(it for it in state.items if it.uid != e.uid)
    if e.after == "prepend":
        pos = 0
    elif e.after == "append":
        pos = len(rest)
    else:
        found = next((i + 1 for i, it in enumerate(rest) if it.uid == e.after), None)
        if found is None:
            return state  # the server refuses a move after an unknown uid
        pos = found
    return _with_items(state, (*rest[:pos], moving, *rest[pos:]))


def _temp(state: ChannelState, e: cw.TempSet, at: float) -> ChannelState:
    old = state.item(e.uid)
    if old is None or old.temp == e.temp:
        return state
    new = replace(old, temp=e.temp)
    return _with_items(state, tuple(new if it.uid == e.uid else it for it in state.items))


def _meta(state: ChannelState, e: cw.PlaylistMeta, at: float) -> ChannelState:
    if e.count == 0:
        # An empty playlist plays nothing. This is also the only end-of-playlist signal for a
        # bot that may not see the playlist (it gets setPlaylistMeta but never playlist/delete).
        return _with_items(state, (), playlist_count=0, playlist_seconds=e.raw_time,
                           current_uid=None, playback=None)
    return replace(state, playlist_count=e.count, playlist_seconds=e.raw_time)


def _current(state: ChannelState, e: cw.CurrentSet, at: float) -> ChannelState:
    if state.current_uid == e.uid:
        return state
    # An unknown uid (e.g. we may not see the playlist) leaves no current item; the playback
    # that follows in changeMedia still says what plays.
    return replace(state, current_uid=e.uid if state.item(e.uid) is not None else None)


def _change_media(state: ChannelState, e: p.MediaChanged, at: float) -> ChannelState:
    media = cw.Media(id=e.media_id, type=e.media_type, title=e.title, seconds=e.seconds)
    return replace(state, playback=Playback(media, e.current_time, e.paused, at))


def _media_update(state: ChannelState, e: p.MediaUpdate, at: float) -> ChannelState:
    if state.playback is None:
        return state  # an update for media we never saw start: nothing to anchor it to
    return replace(state, playback=replace(state.playback, position=e.current_time, paused=e.paused, at=at))


def _locked(state: ChannelState, e: cw.PlaylistLocked, at: float) -> ChannelState:
    return state if state.locked == e.locked else replace(state, locked=e.locked)


# users ------------------------------------------------------------------------------------------

def _user_of(e: p.UserJoined) -> User:
    return User(e.name, e.rank, e.afk, e.muted, e.smuted, e.profile_image, e.profile_text)


def _userlist(state: ChannelState, e: p.UserList, at: float) -> ChannelState:
    return replace(state, users=MappingProxyType({u.name.lower(): _user_of(u) for u in e.users}))


def _add_user(state: ChannelState, e: p.UserJoined, at: float) -> ChannelState:
    users = dict(state.users)
    users[e.name.lower()] = _user_of(e)
    return replace(state, users=MappingProxyType(users))


def _user_left(state: ChannelState, e: p.UserLeft, at: float) -> ChannelState:
    key = e.name.lower()
    if key not in state.users:
        return state
    users = dict(state.users)
    del users[key]
    leader = None if state.leader is not None and state.leader.lower() == key else state.leader
    return replace(state, users=MappingProxyType(users), leader=leader)


def _update_user(state: ChannelState, name: str, **changes: Any) -> ChannelState:
    key = name.lower()
    old = state.users.get(key)
    if old is None:
        return state
    new = replace(old, **changes)
    if new == old:
        return state
    users = dict(state.users)
    users[key] = new
    return replace(state, users=MappingProxyType(users))


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
    return replace(state, usercount=max(0, e.count))


def _leader(state: ChannelState, e: cw.LeaderSet, at: float) -> ChannelState:
    return replace(state, leader=e.name)


def _rank(state: ChannelState, e: p.Rank, at: float) -> ChannelState:
    return replace(state, self_rank=e.rank)


def _login(state: ChannelState, e: p.LoginResult, at: float) -> ChannelState:
    if not e.success or e.name is None:
        return state
    return replace(state, self_name=e.name)


# polls, channel settings ------------------------------------------------------------------------

def _poll(state: ChannelState, e: cw.PollState, at: float) -> ChannelState:
    poll = Poll(e.title, e.options, e.counts, e.obscured, e.initiator, e.timestamp_ms)
    return replace(state, poll=poll)


def _poll_closed(state: ChannelState, e: cw.PollClosed, at: float) -> ChannelState:
    return state if state.poll is None else replace(state, poll=None)


def _permissions(state: ChannelState, e: cw.PermissionsSet, at: float) -> ChannelState:
    # The full object every time: keys absent from it are absent (nobody may use them).
    return replace(state, permissions=MappingProxyType(dict(e.ranks)))


def _options(state: ChannelState, e: cw.ChannelOptions, at: float) -> ChannelState:
    return replace(state, options=MappingProxyType(dict(e.options)))


def _motd(state: ChannelState, e: cw.MotdSet, at: float) -> ChannelState:
    return replace(state, motd=e.html)


def _emotes(state: ChannelState, e: cw.EmoteList, at: float) -> ChannelState:
    return replace(state, emotes=e.emotes)


def _emote_updated(state: ChannelState, e: cw.EmoteUpdated, at: float) -> ChannelState:
    rest = tuple(x for x in state.emotes if x.name != e.emote.name)
    return replace(state, emotes=(*rest, e.emote))


def _emote_removed(state: ChannelState, e: cw.EmoteRemoved, at: float) -> ChannelState:
    return replace(state, emotes=tuple(x for x in state.emotes if x.name != e.name))


def _not_registered(state: ChannelState, e: cw.NotRegistered, at: float) -> ChannelState:
    return replace(state, registered=False)


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
