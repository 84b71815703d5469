"""CyTube's channel permission and option defaults (channel/permissions.js, channel/opts.js of 3.86).

A registered channel loads the full set; an unregistered one gets a smaller set where some keys are
ABSENT (kick, ban, mute, motdedit, playlistaddrawfile, ...): a comparison with a missing key is false
in CyTube, so nobody, not even rank 255, has that right.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REGISTERED_PERMISSIONS: Mapping[str, float] = {
    "seeplaylist": -1,
    "playlistadd": 1.5,
    "playlistnext": 1.5,
    "playlistmove": 1.5,
    "playlistdelete": 2,
    "playlistjump": 1.5,
    "playlistaddlist": 1.5,
    "oplaylistadd": -1,
    "oplaylistnext": 1.5,
    "oplaylistmove": 1.5,
    "oplaylistdelete": 2,
    "oplaylistjump": 1.5,
    "oplaylistaddlist": 1.5,
    "playlistaddcustom": 3,
    "playlistaddrawfile": 2,
    "playlistaddlive": 1.5,
    "exceedmaxlength": 2,
    "addnontemp": 2,
    "settemp": 2,
    "playlistshuffle": 2,
    "playlistclear": 2,
    "pollctl": 1.5,
    "pollvote": -1,
    "viewhiddenpoll": 1.5,
    "voteskip": -1,
    "viewvoteskip": 1.5,
    "mute": 1.5,
    "kick": 1.5,
    "ban": 2,
    "motdedit": 3,
    "filteredit": 3,
    "filterimport": 3,
    "emoteedit": 3,
    "emoteimport": 3,
    "playlistlock": 2,
    "leaderctl": 2,
    "drink": 1.5,
    "chat": 0,
    "chatclear": 2,
    "exceedmaxitems": 2,
    "deletefromchannellib": 2,
    "exceedmaxdurationperuser": 2,
}

UNREGISTERED_PERMISSIONS: Mapping[str, float] = {
    "seeplaylist": -1,
    "playlistadd": -1,
    "playlistnext": 0,
    "playlistmove": 0,
    "playlistdelete": 0,
    "playlistjump": 0,
    "playlistaddlist": 0,
    "oplaylistadd": -1,
    "oplaylistnext": 0,
    "oplaylistmove": 0,
    "oplaylistdelete": 0,
    "oplaylistjump": 0,
    "oplaylistaddlist": 0,
    "playlistaddcustom": 0,
    "playlistaddlive": 0,
    "exceedmaxlength": 0,
    "addnontemp": 0,
    "settemp": 0,
    "playlistshuffle": 0,
    "playlistclear": 0,
    "pollctl": 0,
    "pollvote": -1,
    "viewhiddenpoll": 1.5,
    "voteskip": -1,
    "viewvoteskip": 1.5,
    "playlistlock": 2,
    "leaderctl": 0,
    "drink": 0,
    "chat": 0,
    "chatclear": 2,
    "exceedmaxitems": 2,
    "deletefromchannellib": 2,
}


def default_options(channel: str) -> dict[str, Any]:
    return {
        "allow_voteskip": True,
        "voteskip_ratio": 0.5,
        "afk_timeout": 600,
        "pagetitle": channel,
        "maxlength": 0,
        "externalcss": "",
        "externaljs": "",
        "chat_antiflood": False,
        "chat_antiflood_params": {"burst": 4, "sustained": 1, "cooldown": 4},
        "show_public": False,
        "enable_link_regex": True,
        "password": False,
        "allow_dupes": False,
        "torbanned": False,
        "block_anonymous_users": False,
        "allow_ascii_control": False,
        "playlist_max_per_user": 0,
        "new_user_chat_delay": 0,
        "new_user_chat_link_delay": 0,
        "playlist_max_duration_per_user": 0,
    }


def has_permission(perms: Mapping[str, float], open_playlist: bool, rank: float, node: str) -> bool:
    """CyTube's hasPermission: an absent key is never granted; while the playlist is open (unlocked),
    ``o<node>`` also grants a ``playlist*`` node."""
    if node.startswith("playlist") and open_playlist:
        open_need = perms.get("o" + node)
        if open_need is not None and rank >= open_need:
            return True
    need = perms.get(node)
    return need is not None and rank >= need
