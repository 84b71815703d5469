"""The channel replica: an immutable ``ChannelState`` per room, kept by a pure reducer.

Public API (what plugins and ``daz.actions`` use; everything here is pure and immutable)::

    from daz.cytube.channel import ChannelState, apply, apply_all

    state = apply(state, event, at=clock.monotonic())   # event: a typed event from protocol.parse

``ChannelState`` fields (all immutable: tuples, frozen dataclasses, read-only mappings):

    users: Mapping[str, User]   key name.lower(); User(name, rank, afk, muted, smuted,
                                profile_image, profile_text)
    usercount: int              the server's throttled count (>= 0; includes anonymous sockets)
    leader: str | None
    self_name: str | None       from our successful ``login``
    self_rank: float            from ``rank`` (effective rank; -1 before login)
    items: tuple[PlaylistItem]  in playlist order; PlaylistItem(uid, media, temp, queueby),
                                Media(id, type, title, seconds) with ``media.live`` (seconds 0)
    locked: bool                playlist locked (then only the plain ``playlist*`` keys apply)
    playlist_count, playlist_seconds   from ``setPlaylistMeta``
    current_uid: int | None     an item on ``items`` or None
    playback: Playback | None   Playback(media, position, paused, at); None = nothing plays
    poll: Poll | None           Poll(title, options, counts, obscured, initiator, timestamp_ms);
                                a count is None where the server hides it from us
    options: Mapping[str, Any]  ``channelOpts`` without the channel password
    permissions: Mapping[str, float]   exactly the keys the server sent
    registered: bool            False after ``channelNotRegistered``
    motd: str                   sanitised HTML, as sent
    emotes: tuple[Emote]        Emote(name, image)

Lookups and questions:

    state.user(name) -> User | None          (case-insensitive)
    state.item(uid) -> PlaylistItem | None   state.index(uid) -> int | None
    state.find_media(type, id) -> PlaylistItem | None
    state.current -> PlaylistItem | None     state.playing -> bool (non-live, not paused)
    state.position_now(now) -> float | None  (extrapolated from the last changeMedia/mediaUpdate,
                                              frozen while paused, capped at the item's length)
    state.permission(key) -> float | None    None: the key is ABSENT (unregistered channels lack
                                              kick, mute, ban, motdedit, playlistaddrawfile, ...):
                                              nobody may, not even rank 255
    state.may(key, rank=None) -> bool        CyTube's hasPermission (rank defaults to ours; while
                                              the playlist is unlocked ``o<key>`` also grants)
    state.rank_needed(key) -> float | None   the lowest rank that may, for error messages

``apply`` never raises; ``Malformed`` and unmodelled events return the state unchanged.
"""

from daz.cytube.channel.reducer import apply, apply_all
from daz.cytube.channel.state import ChannelState, Playback, Poll, User
from daz.cytube.channel_wire import Emote, Media, PlaylistItem

__all__ = [
    "ChannelState", "Emote", "Media", "Playback", "PlaylistItem", "Poll", "User", "apply", "apply_all",
]
