"""A room's channel as plain, bounded, JSON-safe data: the status page's room card.

Only what an operator needs at a glance (who is there, what plays and where, the playlist's size,
an open poll), never the MOTD, options or anything a user typed beyond names, titles and poll
text. Poll text arrives HTML-escaped with links as ``<a>``; it is decoded to plain text here and
escaped again by the page.
"""

from __future__ import annotations

from typing import Any

from daz.cytube.channel.state import ChannelState
from daz.cytube.protocol import decode_text

USERS_SHOWN = 50
TEXT_CHARS = 200


def summarize(state: ChannelState | None, now: float, *, live: bool) -> dict[str, Any] | None:
    """The card's data, or None before the room's first complete join. ``live``: the replica
    follows the server now (False: it is the one from before the connection was lost)."""
    if state is None:
        return None
    users = sorted(state.users.values(), key=lambda u: (-u.rank, u.name.lower()))
    playback = state.playback
    now_playing = None
    if playback is not None:
        media = playback.media
        position = playback.position_now(now) if live else playback.position
        now_playing = {
            "title": media.title[:TEXT_CHARS], "type": media.type, "id": media.id[:TEXT_CHARS],
            "seconds": media.seconds, "live": media.live, "paused": playback.paused,
            "position": round(position, 1), "uid": state.current_uid,
        }
    poll = None
    if state.poll is not None:
        p = state.poll
        poll = {
            "title": decode_text(p.title)[:TEXT_CHARS], "initiator": p.initiator, "obscured": p.obscured,
            "options": [{"text": decode_text(text)[:TEXT_CHARS], "count": count}
                        for text, count in zip(p.options, p.counts, strict=True)],
        }
    return {
        "live": live,
        "registered": state.registered,
        "self": {"name": state.self_name, "rank": state.self_rank},
        "users": {
            "count": len(users),
            "shown": [{"name": u.name, "rank": u.rank, "afk": u.afk} for u in users[:USERS_SHOWN]],
        },
        "usercount": state.usercount,
        "leader": state.leader,
        "now_playing": now_playing,
        # Who may not see the playlist gets only its setPlaylistMeta count.
        "playlist": {"length": len(state.items) if state.may("seeplaylist") else state.playlist_count,
                     "seconds": state.playlist_seconds, "locked": state.locked},
        "poll": poll,
    }
