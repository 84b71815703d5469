"""Wire payloads as the real CyTube 3.86 server sends them (../shared/cytube-protocol-actions.md),
and a helper that parses a sequence of frames the way the session does and reduces it."""

from __future__ import annotations

from typing import Any

from daz.cytube import protocol
from daz.cytube.channel import ChannelState, apply

REGISTERED_PERMISSIONS: dict[str, float] = {
    "seeplaylist": -1, "playlistadd": 1.5, "playlistnext": 1.5, "playlistmove": 1.5,
    "playlistdelete": 2, "playlistjump": 1.5, "playlistaddlist": 1.5, "oplaylistadd": -1,
    "oplaylistnext": 1.5, "oplaylistmove": 1.5, "oplaylistdelete": 2, "oplaylistjump": 1.5,
    "oplaylistaddlist": 1.5, "playlistaddcustom": 3, "playlistaddrawfile": 2, "playlistaddlive": 1.5,
    "exceedmaxlength": 2, "addnontemp": 2, "settemp": 2, "playlistshuffle": 2, "playlistclear": 2,
    "pollctl": 1.5, "pollvote": -1, "viewhiddenpoll": 1.5, "voteskip": -1, "viewvoteskip": 1.5,
    "mute": 1.5, "kick": 1.5, "ban": 2, "motdedit": 3, "filteredit": 3, "filterimport": 3,
    "emoteedit": 3, "emoteimport": 3, "playlistlock": 2, "leaderctl": 2, "drink": 1.5, "chat": 0,
    "chatclear": 2, "exceedmaxitems": 2, "deletefromchannellib": 2, "exceedmaxdurationperuser": 2,
}
_ABSENT_UNREGISTERED = {
    "mute", "kick", "ban", "motdedit", "filteredit", "filterimport", "emoteedit", "emoteimport",
    "playlistaddrawfile", "exceedmaxdurationperuser",
}
UNREGISTERED_PERMISSIONS: dict[str, float] = {
    **{k: 0 for k in REGISTERED_PERMISSIONS if k not in _ABSENT_UNREGISTERED},
    "seeplaylist": -1, "playlistadd": -1, "oplaylistadd": -1, "pollvote": -1, "voteskip": -1,
    "viewhiddenpoll": 1.5, "viewvoteskip": 1.5, "playlistlock": 2, "chat": 0, "chatclear": 2,
    "exceedmaxitems": 2, "deletefromchannellib": 2,
}


def media(mid: str, seconds: float = 30, title: str = "Livestream", mtype: str = "rt") -> dict[str, Any]:
    return {"id": mid, "title": title, "seconds": seconds, "duration": "00:30", "type": mtype, "meta": {}}


def item(uid: int, mid: str, *, temp: bool = True, seconds: float = 30, by: str = "owner1") -> dict[str, Any]:
    return {"media": media(mid, seconds), "uid": uid, "temp": temp, "queueby": by}


def change_media(mid: str, seconds: float = 30, current: float = -3, paused: bool = True) -> dict[str, Any]:
    return {**media(mid, seconds), "currentTime": current, "paused": paused}


def user(name: str, rank: float = 1, *, afk: bool = False, muted: bool = False) -> dict[str, Any]:
    return {"name": name, "rank": rank, "profile": {"image": "", "text": ""},
            "meta": {"afk": afk, "muted": muted}}


def join_sequence(
    *, items: list[dict[str, Any]] | None = None, current: int | None = None,
    users: list[dict[str, Any]] | None = None, registered: bool = True, poll: dict[str, Any] | None = None,
) -> list[tuple[str, Any]]:
    """The join burst of section 1.A, then our login (rank 1, "bot")."""
    items = items or []
    frames: list[tuple[str, Any]] = [
        ("setPermissions", REGISTERED_PERMISSIONS if registered else UNREGISTERED_PERMISSIONS),
        ("setPlaylistLocked", registered),
        ("emoteList", [{"name": ":)", "image": "https://example.com/s.png", "source": ":\\)"}]),
        ("chatMsg", {"username": "a", "msg": "old", "meta": {}, "time": 1}),
        ("drinkCount", 0),
        ("channelCSSJS", {"css": "", "cssHash": "", "js": "", "jsHash": ""}),
        ("setMotd", "<b>hi</b>"),
        ("channelOpts", {"allow_voteskip": True, "voteskip_ratio": 0.5, "password": "hunter2"}),
        ("setPlaylistMeta", {"count": len(items), "rawTime": 30 * len(items), "time": "00:30"}),
        ("playlist", items),
    ]
    if current is not None:
        mid = next(i["media"]["id"] for i in items if i["uid"] == current)
        frames += [("setCurrent", current), ("setCurrent", current),
                   ("changeMedia", change_media(mid, current=2.001, paused=False))]
    if poll is not None:
        frames.append(("newPoll", poll))
    frames.append(("userlist", users or []))
    frames.append(("usercount", len(users or []) + 1))
    if not registered:
        frames.append(("channelNotRegistered", None))
    frames += [
        ("rank", 1), ("login", {"success": True, "name": "bot"}), ("addUser", user("bot", 1)),
        ("rank", 1), ("setPlaylistMeta", {"count": len(items), "rawTime": 0, "time": "00:00"}),
        ("playlist", items), ("setUserRank", {"name": "bot", "rank": 1}),
    ]
    return frames


def feed(state: ChannelState, frames: list[tuple[str, Any]], at: float = 0.0) -> ChannelState:
    for name, data in frames:
        event = protocol.parse(name, data)
        assert not isinstance(event, protocol.Malformed), (name, event)
        state = apply(state, event, at)
    return state
