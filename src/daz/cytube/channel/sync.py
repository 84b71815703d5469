"""When a fresh join sequence has built a COMPLETE replica, and what changed between two replicas.

Pure. ``JoinProgress`` is stepped with every event of a new connection; ``complete(progress,
state)`` says when the replica built from them may replace the previous one. ``diff(old, new)``
is what ``room.resynced`` reports, and ``live_events(old, new, event)`` are the fine-grained
``channel.*`` events of one frame while the replica is live.

"Complete" (CyTube 3.86's join order, ../shared/cytube-protocol-actions.md section 1):

- ``setPermissions`` was seen: it opens the channel's join burst, so everything that follows
  belongs to this channel (the options, MOTD, playlist, current media and poll come in between);
- ``userlist`` was seen: it closes the burst (``setCurrent``/``changeMedia`` and ``newPoll`` come
  before it, and only when something plays or a poll is open, so their absence is not waited for;
  ``channelNotRegistered`` may follow and is applied to the live replica);
- our ``login`` succeeded, a ``rank`` came AFTER it (the server looks the channel rank up after the
  login, so the rank before it may be the global one only), and our own name is in the userlist
  (``addUser`` for ourselves follows the login; when logged in before the join, ``userlist`` has us).
  A GUEST login is the exception: CyTube looks a channel rank up for registered accounts only
  (channel.js joinUser), so a guest gets ``rank 0`` before ``login {guest: true}`` and no ``rank``
  after it, ever; waiting for one kept a guest bot's replica from ever going live on a real server.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from daz.cytube import channel_wire as cw
from daz.cytube import protocol as p
from daz.cytube.channel.state import ChannelState, Poll

MediaKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class JoinProgress:
    permissions: bool = False
    userlist: bool = False
    logged_in: bool = False
    rank_after_login: bool = False


def step(progress: JoinProgress, event: object) -> JoinProgress:
    if isinstance(event, cw.PermissionsSet) and not progress.permissions:
        return replace(progress, permissions=True)
    if isinstance(event, p.UserList) and progress.permissions and not progress.userlist:
        return replace(progress, userlist=True)
    if isinstance(event, p.LoginResult) and event.success and not progress.logged_in:
        # A guest's rank (0) came before its login and is final: nothing follows to wait for.
        return replace(progress, logged_in=True, rank_after_login=event.guest)
    if isinstance(event, p.Rank) and progress.logged_in and not progress.rank_after_login:
        return replace(progress, rank_after_login=True)
    return progress


def complete(progress: JoinProgress, state: ChannelState) -> bool:
    return (
        progress.permissions and progress.userlist and progress.logged_in
        and progress.rank_after_login
        and state.self_name is not None and state.user(state.self_name) is not None
    )


# diff --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RankChange:
    name: str
    old: float
    new: float


@dataclass(frozen=True, slots=True)
class ChannelDiff:
    """What changed between two replicas. Playlist items are compared by media (type, id), since
    a restarted server gives the same items new uids; ``media_changed`` compares what plays."""

    users_joined: tuple[str, ...] = ()
    users_left: tuple[str, ...] = ()
    rank_changed: tuple[RankChange, ...] = ()
    media_changed: bool = False
    media_before: cw.Media | None = None
    media_after: cw.Media | None = None
    items_added: tuple[cw.PlaylistItem, ...] = ()
    items_removed: tuple[cw.PlaylistItem, ...] = ()
    poll_opened: Poll | None = None
    poll_closed: Poll | None = None

    @property
    def empty(self) -> bool:
        return not (self.users_joined or self.users_left or self.rank_changed or self.media_changed
                    or self.items_added or self.items_removed or self.poll_opened or self.poll_closed)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for logs, JSON and the bus (names, media ids, counts)."""
        return {
            "users_joined": list(self.users_joined), "users_left": list(self.users_left),
            "rank_changed": [{"name": r.name, "old": r.old, "new": r.new} for r in self.rank_changed],
            "media_changed": self.media_changed,
            "media_before": _media_dict(self.media_before), "media_after": _media_dict(self.media_after),
            "items_added": [_media_dict(it.media) for it in self.items_added],
            "items_removed": [_media_dict(it.media) for it in self.items_removed],
            "poll_opened": None if self.poll_opened is None else self.poll_opened.title,
            "poll_closed": None if self.poll_closed is None else self.poll_closed.title,
        }


def _media_dict(media: cw.Media | None) -> dict[str, Any] | None:
    if media is None:
        return None
    return {"type": media.type, "id": media.id, "title": media.title, "seconds": media.seconds}


def _key(media: cw.Media | None) -> MediaKey | None:
    return None if media is None else (media.type, media.id)


def playing_media(state: ChannelState) -> cw.Media | None:
    return None if state.playback is None else state.playback.media


def diff(old: ChannelState, new: ChannelState) -> ChannelDiff:
    joined, left, ranks = _user_changes(old, new)
    added, removed = _item_changes(old, new)
    before, after = playing_media(old), playing_media(new)
    opened, closed = _poll_changes(old.poll, new.poll)
    return ChannelDiff(
        users_joined=joined, users_left=left, rank_changed=ranks,
        media_changed=_key(before) != _key(after), media_before=before, media_after=after,
        items_added=added, items_removed=removed, poll_opened=opened, poll_closed=closed,
    )


def _user_changes(
    old: ChannelState, new: ChannelState
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[RankChange, ...]]:
    if old.users is new.users:
        return (), (), ()
    joined = tuple(u.name for k, u in new.users.items() if k not in old.users)
    left = tuple(u.name for k, u in old.users.items() if k not in new.users)
    ranks = tuple(
        RankChange(u.name, old.users[k].rank, u.rank)
        for k, u in new.users.items() if k in old.users and old.users[k].rank != u.rank
    )
    return joined, left, ranks


def _live_user_changes(
    old: ChannelState, new: ChannelState, event: object
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[RankChange, ...]]:
    """Single-user frames say who changed; comparing whole userlists is for `userlist`."""
    if old.users is new.users:
        return (), (), ()
    name = getattr(event, "name", None)
    if isinstance(event, p.UserList) or not isinstance(name, str):
        return _user_changes(old, new)
    key = name.lower()
    before, after = old.users.get(key), new.users.get(key)
    if before is None and after is not None:
        return (after.name,), (), ()
    if before is not None and after is None:
        return (), (before.name,), ()
    if before is not None and after is not None and before.rank != after.rank:
        return (), (), (RankChange(after.name, before.rank, after.rank),)
    return (), (), ()


def _item_changes(
    old: ChannelState, new: ChannelState
) -> tuple[tuple[cw.PlaylistItem, ...], tuple[cw.PlaylistItem, ...]]:
    if old.items is new.items:
        return (), ()
    # A multiset of media keys: with allow_dupes the same media may be on the list twice.
    before = Counter((it.media.type, it.media.id) for it in old.items)
    after = Counter((it.media.type, it.media.id) for it in new.items)
    plus, minus = after - before, before - after
    added = _take(new.items, plus)
    removed = _take(old.items, minus)
    return added, removed


def _live_item_changes(
    old: ChannelState, new: ChannelState, event: object
) -> tuple[tuple[cw.PlaylistItem, ...], tuple[cw.PlaylistItem, ...]]:
    """Single-item frames say what changed; comparing whole playlists is for the rest."""
    if isinstance(event, cw.ItemQueued):
        replaced = old.item(event.item.uid)
        return (event.item,), () if replaced is None else (replaced,)
    if isinstance(event, cw.ItemDeleted):
        gone = old.item(event.uid)
        return (), () if gone is None else (gone,)
    if isinstance(event, cw.ItemMoved | cw.TempSet):
        return (), ()
    return _item_changes(old, new)


def _take(items: tuple[cw.PlaylistItem, ...], wanted: Counter[MediaKey]) -> tuple[cw.PlaylistItem, ...]:
    out = []
    left = Counter(wanted)
    for it in items:
        key = (it.media.type, it.media.id)
        if left[key] > 0:
            left[key] -= 1
            out.append(it)
    return tuple(out)


def _poll_changes(old: Poll | None, new: Poll | None) -> tuple[Poll | None, Poll | None]:
    if old == new or (old is not None and new is not None and _same_poll(old, new)):
        return None, None
    return new, old


def _same_poll(a: Poll, b: Poll) -> bool:
    """The same poll (maybe with other counts): a new one has its own timestamp and initiator."""
    return (a.title, a.options, a.initiator, a.timestamp_ms) == (
        b.title, b.options, b.initiator, b.timestamp_ms)


# fine-grained events while live -------------------------------------------------------------------

def live_events(old: ChannelState, new: ChannelState, event: object) -> list[tuple[str, dict[str, Any]]]:
    """The ``channel.*`` bus events (name, data without the room) for one frame applied live."""
    if old is new:
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    joined, left, ranks = _live_user_changes(old, new, event)
    out += [("channel.user.joined", {"name": n, "user": new.user(n)}) for n in joined]
    out += [("channel.user.left", {"name": n}) for n in left]
    out += [("channel.user.rank_changed", {"name": r.name, "old": r.old, "new": r.new}) for r in ranks]
    if old.items is not new.items:
        added, removed = _live_item_changes(old, new, event)
        out.append(("channel.playlist.changed", {
            "added": added, "removed": removed, "count": len(new.items),
            # a move or a shuffle; a setTemp changes an item but not the order
            "order_changed": not added and not removed and old._uids != new._uids,
        }))
    # A changeMedia is a (re)start even of the same media (a single item loops); the playback
    # vanishing is the end of the playlist (the server sends no changeMedia for it).
    if isinstance(event, p.MediaChanged) or (old.playback is not None and new.playback is None):
        out.append(("channel.media.changed", {
            "media": playing_media(new), "before": playing_media(old), "uid": new.current_uid,
        }))
    if old.poll is not new.poll:
        out += _poll_events(old.poll, new.poll)
    if old.leader != new.leader:
        out.append(("channel.leader.changed", {"leader": new.leader, "before": old.leader}))
    if old.self_rank != new.self_rank:
        out.append(("channel.self.rank_changed", {"old": old.self_rank, "new": new.self_rank}))
    if old.permissions is not new.permissions or old.locked != new.locked:
        out.append(("channel.permissions.changed", {"locked": new.locked}))
    return out


def _poll_events(old: Poll | None, new: Poll | None) -> list[tuple[str, dict[str, Any]]]:
    if new is None:
        return [("channel.poll.closed", {"poll": old})]
    if old is None:
        return [("channel.poll.opened", {"poll": new})]
    if _same_poll(old, new):
        return [] if old.counts == new.counts else [("channel.poll.updated", {"poll": new})]
    # A new poll replaced the open one (the server closes the old one first; be robust anyway).
    return [("channel.poll.closed", {"poll": old}), ("channel.poll.opened", {"poll": new})]
