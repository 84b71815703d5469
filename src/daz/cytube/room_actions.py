"""The plugin-facing action API (``ctx.actions``) and the ticket each action returns.

    ticket = await ctx.actions.queue("lobby", "rt", "rtmp://example.com/live/a", duration=30)
    outcome = await ticket.result(timeout=60)    # ActionSettled, or raises the ActionError

    bans = await ctx.actions.banlist("lobby")    # a query: BanEntry(id, name, reason, banned_by, ip_ban)
    await ctx.actions.unban_name("lobby", "troll")   # the ban ids are looked up when it is sent

Each call validates the action locally (``ActionInvalid``, nothing queued), fails fast with
``ActionNotPermitted`` when the room's live replica says the bot lacks the permission, and
otherwise puts it in the room's durable outbox, in order with the room's chat lines. The ticket
settles when the server confirms it (or refuses it, or stays silent too long); the same outcome
is published as ``room.action.confirmed`` / ``room.action.failed``, which is also how an action
restored after a restart (no ticket any more) reports.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Protocol

from daz.cytube.action_flight import ActionSettled
from daz.cytube.actions import (
    Action,
    AssignLeader,
    Ban,
    ClosePoll,
    DeleteMedia,
    JumpTo,
    Kick,
    MoveMedia,
    MoveTarget,
    Mute,
    NewPoll,
    Position,
    QueueMedia,
    SetAfk,
    SetTemp,
    Skip,
    Unban,
    UnbanName,
    Unmute,
    Vote,
    VoteSkip,
    poll_options,
)
from daz.cytube.ban_wire import BanEntry, Banlist
from daz.cytube.channel import ChannelState
from daz.errors import ActionInvalid


class ActionTicket:
    """One submitted action; ``result()`` waits for its outcome in this process."""

    def __init__(self, key: str, room: str, kind: str) -> None:
        self.key = key
        self.room = room
        self.kind = kind
        self.outcome: ActionSettled | None = None
        self._done = asyncio.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def settle(self, outcome: ActionSettled) -> None:
        self.outcome = outcome
        self._done.set()

    async def result(self, timeout: float | None = None) -> ActionSettled:
        """The confirmed outcome; raises the action's ``ActionError`` if it failed, ``TimeoutError``
        if it has not settled within ``timeout`` (it stays queued: the room may be offline)."""
        async with asyncio.timeout(timeout):
            await self._done.wait()
        assert self.outcome is not None  # noqa: S101 - set before the event
        if self.outcome.error is not None:
            raise self.outcome.error
        return self.outcome


class ActionSubmitter(Protocol):
    async def submit_action(self, room: str, action: Action, *,
                            correlation_id: str | None = None) -> ActionTicket: ...

    def channel(self, room: str) -> ChannelState | None: ...

    async def banlist(self, room: str, *, timeout: float | None = None) -> Banlist: ...


class RoomActions:
    """``ctx.actions``: one typed method per CyTube action; each returns an ``ActionTicket``."""

    def __init__(self, rooms: ActionSubmitter) -> None:
        self.rooms = rooms

    async def submit(self, room: str, action: Action, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.rooms.submit_action(room, action, correlation_id=correlation_id)

    # playlist -------------------------------------------------------------------------------------
    async def queue(self, room: str, media_type: str, media_id: str, *, position: Position = "end",
                    temp: bool = True, title: str | None = None, duration: float | None = None,
                    correlation_id: str | None = None) -> ActionTicket:
        action = QueueMedia(media_type, media_id, position, temp, title, duration)
        return await self.submit(room, action, correlation_id=correlation_id)

    async def delete(self, room: str, uid: int, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, DeleteMedia(uid), correlation_id=correlation_id)

    async def move(self, room: str, uid: int, after: MoveTarget, *,
                   correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, MoveMedia(uid, after), correlation_id=correlation_id)

    async def jump(self, room: str, uid: int, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, JumpTo(uid), correlation_id=correlation_id)

    async def skip(self, room: str, uid: int | None = None, *,
                   correlation_id: str | None = None) -> ActionTicket:
        """Skip the item ``uid`` (default: the one playing now). It is never skipped twice: if it is
        not playing any more when the action goes out, the action is done without sending."""
        if uid is None:
            state = self.rooms.channel(room)
            current = state.current_uid if state is not None else None
            if current is None:
                raise ActionInvalid("skip: nothing is playing (or the room's replica is not known yet)",
                                    retryable=False, kind="skip", operation_type="cytube_action")
            uid = current
        return await self.submit(room, Skip(uid), correlation_id=correlation_id)

    async def set_temp(self, room: str, uid: int, temp: bool, *,
                       correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, SetTemp(uid, temp), correlation_id=correlation_id)

    async def voteskip(self, room: str, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, VoteSkip(), correlation_id=correlation_id)

    # polls -----------------------------------------------------------------------------------------
    async def new_poll(self, room: str, title: str, options: Sequence[str], *, obscured: bool = False,
                       timeout: int | None = None, retain_votes: bool = False,
                       correlation_id: str | None = None) -> ActionTicket:
        action = NewPoll(title, poll_options(options), obscured, timeout, retain_votes)
        return await self.submit(room, action, correlation_id=correlation_id)

    async def vote(self, room: str, option: int, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, Vote(option), correlation_id=correlation_id)

    async def close_poll(self, room: str, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, ClosePoll(), correlation_id=correlation_id)

    # users -----------------------------------------------------------------------------------------
    async def kick(self, room: str, name: str, reason: str = "", *,
                   correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, Kick(name, reason), correlation_id=correlation_id)

    async def ban(self, room: str, name: str, reason: str = "", *,
                  correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, Ban(name, reason), correlation_id=correlation_id)

    async def unban(self, room: str, ban_id: int, name: str, *,
                    correlation_id: str | None = None) -> ActionTicket:
        """Lift ban ``ban_id`` (from ``banlist``). Prefer ``unban_name``: an id kept across a reconnect
        or restart can be stale, and CyTube confirms the unban of an id it no longer has all the same."""
        return await self.submit(room, Unban(ban_id, name), correlation_id=correlation_id)

    async def unban_name(self, room: str, name: str, *, correlation_id: str | None = None) -> ActionTicket:
        """Lift every ban on ``name`` (case-insensitive). Durable like every action; its ban ids are
        looked up in the server's banlist right before sending, never earlier (``UnbanName``). The
        ticket fails with ``ActionInvalid`` if ``name`` is not on the banlist."""
        return await self.submit(room, UnbanName(name), correlation_id=correlation_id)

    # queries (not durable: answered now, on the live connection, or an error) --------------------
    async def banlist(self, room: str, *, timeout: float | None = None) -> tuple[BanEntry, ...]:
        """The channel's ban list: ``BanEntry(id, name, reason, banned_by, ip_ban)`` per row, in the
        server's order (addresses are never exposed). Needs the ``ban`` permission in a registered
        channel: ``ActionNotPermitted`` at once otherwise, nothing sent. ``RoomNotReady`` when the
        room is not READY; ``BanlistUnanswered`` when the server stays silent for ``timeout``
        seconds (default ``cytube.action_timeout_seconds``)."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not math.isfinite(timeout) or timeout <= 0):
            raise ActionInvalid(f"banlist: timeout must be a positive number of seconds (or None for the "
                                f"default), not {timeout!r}", retryable=False, kind="banlist",
                                operation_type="cytube_query")
        return (await self.rooms.banlist(room, timeout=timeout)).entries

    async def mute(self, room: str, name: str, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, Mute(name), correlation_id=correlation_id)

    async def unmute(self, room: str, name: str, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, Unmute(name), correlation_id=correlation_id)

    async def set_afk(self, room: str, afk: bool, *, correlation_id: str | None = None) -> ActionTicket:
        return await self.submit(room, SetAfk(afk), correlation_id=correlation_id)

    async def assign_leader(self, room: str, name: str, *,
                            correlation_id: str | None = None) -> ActionTicket:
        """Make ``name`` the leader; ``""`` takes the leader away (the server clock resumes)."""
        return await self.submit(room, AssignLeader(name), correlation_id=correlation_id)
