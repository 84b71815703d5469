"""One channel of the fake server: its members, ranks, permissions, options and the join sequence.

Members are sockets in the channel (anonymous until login) and simulated users a test adds
(``sid is None``: no socket; what the server would send them is kept in ``inbox``). Every action,
from a socket or from a simulated user, goes through the same handlers, so a simulated user's
``queue`` or ``vote`` meets exactly the rules a client's does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from daz.testing.fake_cytube import typecheck
from daz.testing.fake_cytube.limits import CytubeLimits
from daz.testing.fake_cytube.members import ADMIN_RANK, NO_PAYLOAD, BanRecord, Member, cloak
from daz.testing.fake_cytube.moderation import Moderation
from daz.testing.fake_cytube.permissions import (
    REGISTERED_PERMISSIONS,
    UNREGISTERED_PERMISSIONS,
    default_options,
    has_permission,
)
from daz.testing.fake_cytube.playlist import Playlist
from daz.testing.fake_cytube.playlist_actions import PlaylistActions
from daz.testing.fake_cytube.polls import Polls
from daz.testing.fake_cytube.voteskip import Voteskip

if TYPE_CHECKING:
    from daz.testing.fake_cytube.server import FakeCytubeServer

__all__ = ["ADMIN_RANK", "NO_PAYLOAD", "BanRecord", "FakeChannel", "Member"]


class FakeChannel:
    def __init__(self, server: FakeCytubeServer, name: str, *, registered: bool) -> None:
        self.server = server
        self.name = name
        self.members: list[Member] = []
        self.registered = registered
        self.channel_ranks: dict[str, float] = {}  # lower name -> stored rank (registered channels)
        self.bans: list[BanRecord] = []
        self._ban_ids = 0
        self.css = ""
        self.js = ""
        self.reset_settings()
        self.playlist: Playlist = Playlist(self)
        self.playlist_actions = PlaylistActions(self, self.playlist)
        self.polls: Polls = Polls(self)
        self.voteskip = Voteskip(self)
        self.moderation: Moderation = Moderation(self)
        self._usercount_sent_at = 0.0
        self._usercount_trailing: asyncio.TimerHandle | None = None

    @property
    def limits(self) -> CytubeLimits:
        return self.server.limits

    def reset_settings(self) -> None:
        """Permissions, lock, options and MOTD as a fresh channel of this kind has them."""
        base = REGISTERED_PERMISSIONS if self.registered else UNREGISTERED_PERMISSIONS
        self.permissions: dict[str, float] = dict(base)
        self.open_playlist = not self.registered  # a registered channel starts locked
        self.options: dict[str, Any] = default_options(self.name)
        # CyTube's opts.password is the channel password itself (or false), and channelOpts sends
        # it to every member in clear: a client must meet it here to prove it never logs it.
        self.options["password"] = self.server.channel_passwords.get(self.name, False)
        self.motd = ""

    # actions --------------------------------------------------------------------------------------
    async def act(self, member: Member, event: str, data: Any) -> Any:
        """Run a client action as the real server does: a typechecked event with a wrong payload
        gets ``errorMsg``; an event the channel does not handle is dropped silently. Returns what
        an ack callback would get (newPoll only)."""
        error = typecheck.check(event, data)
        if error is not None:
            await self.send(member, "errorMsg", {"msg": error})
            return None
        pl, polls, mod = self.playlist_actions, self.polls, self.moderation
        handlers: dict[str, Callable[[Member, Any], Any]] = {
            "queue": pl.on_queue,
            "delete": pl.on_delete,
            "setTemp": pl.on_set_temp,
            "moveMedia": pl.on_move_media,
            "jumpTo": pl.on_jump_to,
            "playNext": pl.on_play_next,
            "clearPlaylist": pl.on_clear,
            "shufflePlaylist": pl.on_shuffle,
            "togglePlaylistLock": pl.on_toggle_lock,
            "assignLeader": pl.on_assign_leader,
            "mediaUpdate": pl.on_media_update,
            "playerReady": pl.on_player_ready,
            "requestPlaylist": pl.on_request_playlist,
            "newPoll": polls.on_new_poll,
            "vote": polls.on_vote,
            "closePoll": polls.on_close_poll,
            "setOptions": mod.on_set_options,
            "setPermissions": mod.on_set_permissions,
            "setMotd": mod.on_set_motd,
            "setChannelRank": mod.on_set_channel_rank,
            "requestBanlist": mod.on_request_banlist,
            "voteskip": self.voteskip.on_voteskip,
            "unban": mod.on_unban,
        }
        handler = handlers.get(event)
        if handler is None:
            return None
        return await handler(member, data)

    # who ----------------------------------------------------------------------------------------
    def users(self) -> list[Member]:
        """Logged-in members, in join order (the userlist)."""
        return [m for m in self.members if m.name is not None]

    def find(self, name: str) -> Member | None:
        lower = name.lower()
        return next((m for m in self.members if m.name is not None and m.lower == lower), None)

    def may(self, member: Member, node: str) -> bool:
        return has_permission(self.permissions, self.open_playlist, member.rank, node)

    # sending ------------------------------------------------------------------------------------
    async def send(self, member: Member, event: str, data: Any = NO_PAYLOAD) -> None:
        if member.sid is None:
            member.inbox.append((event, None if data is NO_PAYLOAD else data))
            return
        if not self.server.connected(member.sid):
            return  # gone (kicked meanwhile)
        if data is NO_PAYLOAD:
            await self.server.sio.emit(event, to=member.sid)
        else:
            await self.server.sio.emit(event, data, to=member.sid)

    async def broadcast(
        self, event: str, data: Any = NO_PAYLOAD, where: Callable[[Member], bool] | None = None
    ) -> None:
        """To every socket in the channel (anonymous ones too), optionally filtered."""
        for member in list(self.members):
            if where is None or where(member):
                await self.send(member, event, data)

    async def broadcast_each(self, event: str, build: Callable[[Member], Any]) -> None:
        """A payload shaped per recipient (``build`` returns NO_PAYLOAD to skip one)."""
        for member in list(self.members):
            data = build(member)
            if data is not NO_PAYLOAD:
                await self.send(member, event, data)

    # user entries --------------------------------------------------------------------------------
    def user_entry(self, user: Member, viewer: Member | None) -> dict[str, Any]:
        """The userlist entry of ``user`` as ``viewer`` sees it (three levels by viewer rank)."""
        level = (
            0 if viewer is None else (2 if viewer.global_rank >= ADMIN_RANK else 1 if viewer.rank >= 2 else 0)
        )
        meta: dict[str, Any] = {"afk": user.afk, "muted": user.muted and not user.smuted}
        if level:
            meta = {
                "afk": user.afk,
                "muted": user.muted,
                "smuted": user.smuted,
                "aliases": [user.name],
                "ip": user.ip if level == 2 else cloak(user.ip),
            }
        return {"name": user.name, "rank": user.rank, "profile": {"image": "", "text": ""}, "meta": meta}

    async def send_userlist(self, member: Member) -> None:
        await self.send(member, "userlist", [self.user_entry(u, member) for u in self.users()])
        leader = self.playlist.leader
        if leader is not None:
            await self.send(member, "setLeader", leader.name)

    async def send_usercount(self) -> None:
        """``usercount`` to all, at most once per interval, leading and trailing (CyTube 3.86)."""
        interval = self.limits.usercount_interval_seconds if self.limits.enabled else 0.0
        now = time.monotonic()
        if now - self._usercount_sent_at >= interval:
            self._usercount_sent_at = now
            await self.broadcast("usercount", len(self.members))
            return
        if self._usercount_trailing is None:
            delay = self._usercount_sent_at + interval - now
            self._usercount_trailing = asyncio.get_running_loop().call_later(delay, self._trailing_usercount)

    def _trailing_usercount(self) -> None:
        self._usercount_trailing = None
        self.server.spawn(self.send_usercount(), "fake_cytube.usercount")

    def stop_timers(self) -> None:
        if self._usercount_trailing is not None:
            self._usercount_trailing.cancel()
            self._usercount_trailing = None
        self.playlist.close()
        self.polls.stop_timer()

    # joining and leaving --------------------------------------------------------------------------
    async def join(self, member: Member, backlog: Iterable[dict[str, Any]]) -> None:
        """The join sequence, in the order a real CyTube 3.86 sends it (protocol notes §1)."""
        self.members.append(member)
        await self.send(member, "setPermissions", dict(self.permissions))
        await self.send(member, "setPlaylistLocked", not self.open_playlist)
        await self.send(member, "emoteList", [])
        for line in backlog:
            await self.send(member, "chatMsg", line)
        await self.send(member, "drinkCount", 0)
        await self.send(member, "channelCSSJS", {"css": self.css, "cssHash": "", "js": self.js, "jsHash": ""})
        await self.send(member, "setMotd", self.motd)
        await self.send(member, "channelOpts", dict(self.options))
        await self.playlist.send_playlist(member)
        await self.playlist.send_change_media(member)
        await self.polls.send_poll(member)
        await self.send_userlist(member)
        await self.send_usercount()
        if not self.registered:
            await self.send(member, "channelNotRegistered")

    async def logged_in(self, member: Member) -> None:
        """After a successful login in this channel: ``addUser`` (at the global rank), then, for a
        registered account only, the channel-rank lookup: ``rank``, the playlist again and
        ``setUserRank`` (protocol notes §1). CyTube never looks a guest's channel rank up
        (channel.js joinUser: ``if (user.is(Flags.U_REGISTERED))``): a guest's ``rank 0`` came
        before its ``login`` and nothing follows the ``addUser`` (measured on CyTube 3.86)."""
        await self.send(member, "addUser", self.user_entry(member, member))
        for other in self.members:
            if other is not member:
                await self.send(other, "addUser", self.user_entry(member, other))
        await self.moderation.mod_whisper(f"{member.name} joined (aliases: {member.name})", 2)
        if not member.registered:
            return
        rank = self.stored_rank(member)
        crossed = (member.rank >= 2) != (rank >= 2)
        member.rank = rank
        # CyTube's setChannelRank emits `rank`, then the rank change re-sends the userlist if it
        # crossed 2 (measured on 3.86: rank 4, userlist, setPlaylistMeta, playlist, setUserRank).
        await self.send(member, "rank", member.rank)
        if crossed:
            await self.send_userlist(member)
        await self.playlist.send_playlist(member)
        await self.broadcast("setUserRank", {"name": member.name, "rank": member.rank})

    async def leave(self, member: Member) -> None:
        if member not in self.members:
            return
        self.members.remove(member)
        if member.name is not None:
            await self.broadcast("userLeave", {"name": member.name})
        await self.playlist.user_left(member)
        await self.polls.user_left(member)
        await self.voteskip.user_left(member)
        if not self.members:
            # CyTube unloads a channel the moment its last socket leaves (server.js "empty"): a
            # registered one is saved and loaded again on the next join with every uid renumbered
            # from 0, an unregistered one is forgotten, playlist and all (measured on 3.86).
            self.server.unload(self)
            return
        await self.send_usercount()

    def stored_rank(self, member: Member) -> float:
        """The rank a member gets at login: max(global, stored channel rank)."""
        stored = self.channel_ranks.get(member.lower, 0.0) if self.registered and member.registered else 0.0
        return max(member.global_rank, stored)

    async def set_rank(self, member: Member, rank: float) -> None:
        """A channel rank change of a present user: userlist if it crossed 2, setUserRank, rank."""
        old = member.rank
        member.rank = rank
        if (old >= 2) != (rank >= 2):
            await self.send_userlist(member)
        await self.broadcast("setUserRank", {"name": member.name, "rank": rank})
        await self.send(member, "rank", rank)

    def add_ban(self, ip: str, name: str, reason: str, bannedby: str) -> BanRecord:
        self._ban_ids += 1
        record = BanRecord(self._ban_ids, ip, name.lower(), reason, bannedby)
        self.bans.append(record)
        return record

    def name_banned(self, member: Member) -> bool:
        """A ban on the member's name (any row: ``/ipban`` leaves one per address too)."""
        if not self.registered or not self.limits.enabled or member.name is None:
            return False
        return any(b.name == member.lower for b in self.bans)

    def banned(self, member: Member) -> bool:
        """An IP ban bites at join, a name ban at login (kickban.js)."""
        if not self.registered or not self.limits.enabled:
            return False  # unregistered channels have no ban list
        return any(
            (b.ip != "*" and b.ip == member.ip) or (member.name is not None and b.name == member.lower)
            for b in self.bans
        )
