"""Test-side controls of the fake server: simulated users and their actions, ranks, registration,
bans, the media catalog, and server-side chat and playback. Mixed into ``FakeCytubeServer``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from daz.testing.fake_cytube.media import Media
from daz.testing.fake_cytube.members import Member
from daz.testing.fake_cytube.records import ActionRecord, ChatRecord, now_ms
from daz.testing.fake_cytube.sessions import CHAT_LIMIT_CHARS, chat_payload

if TYPE_CHECKING:
    import socketio

    from daz.testing.fake_cytube.channel import FakeChannel
    from daz.testing.fake_cytube.sessions import Sessions


class SimulationControls:
    # provided by FakeCytubeServer
    sio: socketio.AsyncServer
    wire: Sessions
    catalog: dict[tuple[str, str], tuple[str, float]]
    actions_log: list[ActionRecord]
    _registered: set[str]
    _chat: dict[str, list[ChatRecord]]

    def channel(self, name: str) -> FakeChannel:
        raise NotImplementedError

    def _room_sids(self, room: str) -> list[str]:
        raise NotImplementedError

    async def kick_member(self, member: Member, reason: str) -> None:
        raise NotImplementedError

    async def accept_chat(
        self, room: str, username: str, text: str, skip_sid: str | None = None
    ) -> ChatRecord:
        raise NotImplementedError

    async def say(self, room: str, username: str, text: str) -> ChatRecord:
        """A line from ``username`` (present or not) in ``room``, recorded and broadcast as chat."""
        return await self.accept_chat(room.lower(), username, text)

    async def say_many(self, room: str, lines: list[tuple[str, str]]) -> int:
        """Bulk ``say`` for benchmarks: the same records and the same wire frames, encoded once each.

        Each line is recorded exactly as ``say`` records it; its Socket.IO frame is encoded here
        (python-socketio's own compact JSON) and queued straight to every socket in the room, skipping
        the per-emit room lookup and packet objects, so the server is not what limits a client
        benchmark. Returns the number of lines.
        """
        room = room.lower()
        frames: list[str] = []
        filtered = self.channel(room).registered
        for username, text in lines:
            record = ChatRecord(room, username, text[:CHAT_LIMIT_CHARS], now_ms())
            self._chat[room].append(record)
            payload = chat_payload(record, filtered=filtered)
            frames.append("2" + json.dumps(["chatMsg", payload], separators=(",", ":")))
        for sid in self._room_sids(room):
            eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is None:
                continue
            for frame in frames:
                await self.sio.eio.send(eio_sid, frame)
        return len(frames)

    def add_media(self, media_type: str, media_id: str, title: str, seconds: float) -> None:
        """Make ``(media_type, media_id)`` resolvable by ``queue`` (the fake's stand-in for a lookup)."""
        self.catalog[(media_type, media_id)] = (title, seconds)

    async def play(
        self,
        room: str,
        *,
        media_id: str = "dQw4w9WgXcQ",
        title: str = "video",
        seconds: float = 212.0,
        media_type: str = "yt",
        temp: bool = True,
    ) -> int:
        """The server adds an item after the current one and starts it (``seconds <= 0``: live, no
        clock). Returns its uid."""
        item = await self.channel(room).playlist.play_now(
            Media(media_id, title, seconds, media_type), temp=temp
        )
        return item.uid

    async def pause(self, room: str, paused: bool = True) -> None:
        """Pause or resume the current item as a pausing leader would (``mediaUpdate`` to all)."""
        await self.channel(room).playlist.hold(paused)

    async def kick(self, room: str, username: str, reason: str) -> None:
        """A moderator's ``/kick``: ``kick {reason}`` to the user, then disconnect."""
        member = self.channel(room).find(username)
        if member is not None:
            await self.kick_member(member, reason)

    def register_channel(self, room: str, registered: bool = True) -> None:
        """Make ``room`` registered (full permission set, bans, ranks, the playlist survives a restart;
        no ``channelNotRegistered``) or unregistered. Settings reset to the new kind's defaults; do it
        before clients join."""
        name = room.lower()
        if registered:
            self._registered.add(name)
        else:
            self._registered.discard(name)
        channel = self.channel(name)
        channel.registered = registered
        channel.reset_settings()

    async def ban(
        self, room: str, *, name: str | None = None, ip: str | None = None, reason: str = ""
    ) -> None:
        """A moderator's ``/ban`` (name) or ``/ipban`` (IP): present matches are kicked "You're banned!",
        later joins get "You are banned from this channel." Bans exist in registered channels only."""
        channel = self.channel(room)
        if not channel.registered:
            raise ValueError(
                f"ban: channel {room!r} is not registered (CyTube has no bans there); "
                "call register_channel first"
            )
        if name is None and ip is None:
            raise ValueError("ban: give name= or ip=")
        channel.add_ban(ip or "*", name or "", reason, "[server]")
        for member in list(channel.members):
            if (name is not None and member.lower == name.lower()) or (ip is not None and member.ip == ip):
                await self.kick_member(member, "You're banned!")

    def unban(self, room: str, *, name: str | None = None, ip: str | None = None) -> None:
        channel = self.channel(room)
        channel.bans = [
            b
            for b in channel.bans
            if not ((name is not None and b.name == name.lower()) or (ip is not None and b.ip == ip))
        ]

    async def set_rank(self, room: str, name: str, rank: float) -> None:
        """Set ``name``'s channel rank, e.g. the bot account's. In a registered channel it is stored for
        a registered account (applied at its next login too); a present user gets it at once."""
        channel = self.channel(room)
        channel.channel_ranks[name.lower()] = rank
        member = channel.find(name)
        if member is not None:
            await channel.set_rank(member, max(member.global_rank, rank))

    async def add_user(self, room: str, name: str, *, rank: float = 0.0, ip: str | None = None) -> None:
        """A simulated user (no socket) joins and logs in: ``addUser`` and ``usercount`` to all."""
        channel = self.channel(room)
        if channel.find(name) is not None:
            raise ValueError(f"add_user: {name!r} is already in {room!r}")
        member = Member(
            key=f"sim:{name.lower()}",
            ip=ip or f"10.255.0.{len(channel.members) + 1}",
            name=name,
            registered=rank >= 1,
            global_rank=min(rank, 1.0),
            rank=rank,
        )
        channel.members.append(member)
        for other in channel.members:
            if other is not member:
                await channel.send(other, "addUser", channel.user_entry(member, other))
        await channel.send_usercount()

    async def remove_user(self, room: str, name: str) -> None:
        """A simulated or real user leaves (a real one is disconnected without a kick)."""
        channel = self.channel(room)
        member = channel.find(name)
        if member is None:
            return
        if member.sid is not None:
            await self.sio.disconnect(member.sid)
        else:
            await channel.leave(member)

    async def user_act(self, room: str, name: str, event: str, data: Any = None) -> Any:
        """A present user (usually simulated) sends ``event``: the same rules as a client's frame,
        e.g. ``user_act("lobby", "alice", "queue", {...})`` or ``("vote", {"option": 1})``;
        ``"chatMsg"`` runs chat commands too. What the server answered a simulated user is in
        ``inbox(room, name)``."""
        channel = self.channel(room)
        member = channel.find(name)
        if member is None:
            raise ValueError(f"user_act: {name!r} is not in {room!r}")
        self.actions_log.append(ActionRecord(event, data, member.ip, channel.name, member.name, now_ms()))
        if event == "chatMsg":
            msg = data.get("msg") if isinstance(data, dict) else None
            if isinstance(msg, str) and msg.strip():
                await self.wire.member_chat(channel, member, msg)
            return None
        return await channel.act(member, event, data)

    def inbox(self, room: str, name: str) -> list[tuple[str, Any]]:
        """Events the server sent a simulated user (``queueFail``, ``errorMsg``, broadcasts...)."""
        member = self.channel(room).find(name)
        return list(member.inbox) if member is not None else []
