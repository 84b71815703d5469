"""The fake server's own channel state as plain frozen data (ground truth for tests).

Texts are as the server holds them (not HTML-escaped), counts are the real ones even while a poll is
obscured, and ``position`` is the server's clock extrapolated to the moment of the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daz.testing.fake_cytube.channel import FakeChannel


@dataclass(frozen=True, slots=True)
class ItemState:
    uid: int
    type: str
    id: str
    title: str
    seconds: float
    temp: bool
    queueby: str


@dataclass(frozen=True, slots=True)
class UserState:
    name: str
    rank: float
    afk: bool
    muted: bool
    smuted: bool


@dataclass(frozen=True, slots=True)
class PollSnapshot:
    title: str
    options: tuple[str, ...]
    counts: tuple[int, ...]
    obscured: bool
    initiator: str


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    name: str
    registered: bool
    locked: bool
    items: tuple[ItemState, ...]
    current_uid: int | None
    position: float | None  # seconds into the current item (negative during the lead-in)
    paused: bool
    users: tuple[UserState, ...]  # logged-in users in join order
    usercount: int  # every socket in the channel, anonymous ones too (what `usercount` says)
    leader: str | None
    poll: PollSnapshot | None
    options: Mapping[str, Any]
    permissions: Mapping[str, float]
    motd: str

    @property
    def current(self) -> ItemState | None:
        return next((i for i in self.items if i.uid == self.current_uid), None)


def snapshot(channel: FakeChannel) -> ChannelSnapshot:
    playlist, poll = channel.playlist, channel.polls.poll
    return ChannelSnapshot(
        name=channel.name,
        registered=channel.registered,
        locked=not channel.open_playlist,
        items=tuple(
            ItemState(i.uid, i.media.type, i.media.id, i.media.title, i.media.seconds, i.temp, i.queueby)
            for i in playlist.items
        ),
        current_uid=playlist.current.uid if playlist.current is not None else None,
        position=playlist.position_now() if playlist.current is not None else None,
        paused=playlist.paused,
        users=tuple(UserState(m.name or "", m.rank, m.afk, m.muted, m.smuted) for m in channel.users()),
        usercount=len(channel.members),
        leader=playlist.leader.name if playlist.leader is not None else None,
        poll=None
        if poll is None
        else PollSnapshot(poll.title, tuple(poll.options), tuple(poll.counts), poll.obscured, poll.initiator),
        options=MappingProxyType(dict(channel.options)),
        permissions=MappingProxyType(dict(channel.permissions)),
        motd=channel.motd,
    )
