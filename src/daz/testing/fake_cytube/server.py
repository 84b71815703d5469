"""The fake CyTube server: lifecycle, fault controls, test-side controls and ground truth.

Socket handlers live in ``sessions``, channel rules in ``channel``/``playlist``/``polls``/``moderation``.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

import socketio
import structlog
from aiohttp import web

from daz.testing.fake_cytube.channel import FakeChannel
from daz.testing.fake_cytube.controls import SimulationControls
from daz.testing.fake_cytube.limits import ConnectionGate, CytubeLimits
from daz.testing.fake_cytube.members import Member
from daz.testing.fake_cytube.playlist import PlaybackTiming
from daz.testing.fake_cytube.polls import PollState
from daz.testing.fake_cytube.records import (
    DUPLICATE_LOGIN,
    ActionRecord,
    ChatRecord,
    KickRecord,
    LoginRefusal,
    now_ms,
)
from daz.testing.fake_cytube.relay import RelayConn
from daz.testing.fake_cytube.sessions import CHAT_LIMIT_CHARS, Sessions, chat_payload
from daz.testing.fake_cytube.state import ChannelSnapshot, snapshot

log = structlog.get_logger("daz.testing.fake_cytube")


def js_numbers(value: Any) -> Any:
    """``value`` with every whole float as an int, as JavaScript's JSON.stringify writes numbers:
    CyTube sends ``"rank":1`` and ``"currentTime":0``, never ``1.0`` (measured on 3.86)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: js_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [js_numbers(item) for item in value]
    return value


class _JsonLikeCytube(socketio.AsyncServer):  # type: ignore[misc]
    """Every frame's numbers written the way the real (Node.js) server writes them."""

    async def emit(self, event: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
        await super().emit(event, js_numbers(data), *args, **kwargs)


class FakeCytubeServer(SimulationControls):
    """See the package docstring. Knobs are keyword arguments with CyTube's values as defaults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 25.0,
        ping_timeout: float = 120.0,
        limits: CytubeLimits | None = None,
        playback: PlaybackTiming | None = None,
        accounts: Mapping[str, str] | None = None,
        global_ranks: Mapping[str, float] | None = None,
        channel_passwords: Mapping[str, str] | None = None,
        registered_channels: Iterable[str] = (),
        media: Mapping[tuple[str, str], tuple[str, float]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.limits = limits if limits is not None else CytubeLimits()
        self.playback = playback if playback is not None else PlaybackTiming()
        # account lookups are case-insensitive on CyTube; the stored spelling is the display name
        self.accounts = {name.lower(): (name, pw) for name, pw in (accounts or {}).items()}
        self.global_ranks = {name.lower(): float(rank) for name, rank in (global_ranks or {}).items()}
        self.channel_passwords = {k.lower(): v for k, v in (channel_passwords or {}).items()}
        self.catalog: dict[tuple[str, str], tuple[str, float]] = dict(media or {})
        self._registered = {name.lower() for name in registered_channels}
        # faults
        self.silent = False
        self.refusing = False
        self.media_updates_stopped = False
        self.reply_delay = 0.0
        self.echoes_dropped = False
        # ground truth and counters (survive restarts, like CyTube's persisted chat buffer)
        self._chat: dict[str, list[ChatRecord]] = defaultdict(list)
        self._max_sessions: dict[tuple[str, str], int] = defaultdict(int)
        self.kick_log: list[KickRecord] = []
        self.login_refusal_log: list[LoginRefusal] = []
        self.guest_login_log: list[float] = []  # time.monotonic() of each successful guest login
        self.actions_log: list[ActionRecord] = []
        self.connections_total = 0
        self.refused_connects = 0
        self.restarts = 0
        # what a registered channel keeps across a restart (CyTube saves it to its database)
        self._saved: dict[str, dict[str, Any]] = {}
        # per-run state (forgotten on restart)
        self._channels: dict[str, FakeChannel] = {}
        self.gate = ConnectionGate(self.limits)
        # plumbing
        self.sio = _JsonLikeCytube(
            async_mode="aiohttp",
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            cors_allowed_origins="*",
            async_handlers=False,
            logger=False,
            engineio_logger=False,
        )
        self.wire = Sessions(self)
        self.wire.register(self.sio)
        self._app = web.Application()
        self.sio.attach(self._app)
        self._app.router.add_get("/socketconfig/{channel}.json", self._socketconfig)
        self._runner: web.AppRunner | None = None
        self._upstream_port = 0
        self._relay: asyncio.Server | None = None
        self._conns: set[RelayConn] = set()
        # Accepted sockets whose upstream leg is still being opened: not in _conns yet, but stop()
        # must drop them too (or they would outlive the server and leak their transport).
        self._accepting: set[asyncio.StreamWriter] = set()
        self._generation = 0  # bumped by stop(): an accept begun before it must not go on after
        self._group: asyncio.TaskGroup | None = None

    # lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeCytubeServer:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._upstream_port = int(self._runner.addresses[0][1])
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._group is not None:
            await self._group.__aexit__(None, None, None)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._relay is not None

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task owned by the server's TaskGroup (timers, clocks, greetings)."""
        if self._group is None:
            coro.close()
            raise RuntimeError("FakeCytubeServer: use it as `async with FakeCytubeServer(...)`")
        return self._group.create_task(coro, name=name)

    async def start(self) -> None:
        """(Re)bind the public port; after ``stop`` the SAME port is used again."""
        if self._relay is not None:
            return
        self._relay = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = int(self._relay.sockets[0].getsockname()[1])
        log.info("fake_cytube.started", port=self.port)

    async def stop(self) -> None:
        """Stop listening and drop every connection. The server forgets sessions, buckets and guest
        windows; a registered channel keeps its playlist, poll, settings, ranks and bans (CyTube saves
        them), an unregistered one is forgotten. The chat buffer is kept."""
        relay, self._relay = self._relay, None
        self._generation += 1
        if relay is not None:
            relay.close()
        self.kill_connections()
        if relay is not None:
            await relay.wait_closed()
        for channel in self._channels.values():
            channel.stop_timers()
            if channel.registered:
                self._saved[channel.name] = self._save(channel)
            else:
                self._saved.pop(channel.name, None)
        self._channels.clear()
        self.wire.socks.clear()
        self.gate.reset()
        log.info("fake_cytube.stopped", port=self.port)

    def unload(self, channel: FakeChannel) -> None:
        """Drop ``channel`` from memory as CyTube does when its last socket leaves: saved (and loaded
        again on the next use) when registered, forgotten otherwise."""
        if self._channels.get(channel.name) is not channel:
            return
        channel.stop_timers()
        if channel.registered:
            self._saved[channel.name] = self._save(channel)
        del self._channels[channel.name]

    async def restart(self, down_for: float = 0.0) -> None:
        await self.stop()
        if down_for > 0:
            await asyncio.sleep(down_for)
        self.restarts += 1
        await self.start()

    def _save(self, channel: FakeChannel) -> dict[str, Any]:
        return {
            "playlist": channel.playlist.dump(),
            "poll": channel.polls.poll,
            "permissions": channel.permissions,
            "open": channel.open_playlist,
            "options": channel.options,
            "motd": channel.motd,
            "ranks": channel.channel_ranks,
            "bans": channel.bans,
            "next_ban": channel._ban_ids,
        }

    # channels --------------------------------------------------------------------------------
    def channel(self, name: str) -> FakeChannel:
        """The live channel ``name`` (created, or loaded from its saved state, on first use)."""
        name = name.lower()
        channel = self._channels.get(name)
        if channel is not None:
            return channel
        channel = self._channels[name] = FakeChannel(self, name, registered=name in self._registered)
        saved = self._saved.pop(name, None) if channel.registered else None
        if saved is not None:
            channel.permissions, channel.open_playlist = saved["permissions"], saved["open"]
            channel.options, channel.motd = saved["options"], saved["motd"]
            channel.channel_ranks, channel.bans, channel._ban_ids = (
                saved["ranks"],
                saved["bans"],
                saved["next_ban"],
            )
            poll: PollState | None = saved["poll"]
            channel.polls.poll = poll
            channel.playlist.load(saved["playlist"])
        return channel

    def connected(self, sid: str) -> bool:
        """Is ``sid`` a socket the server still holds (not kicked or gone)?"""
        return sid in self.wire.socks

    # fault controls ---------------------------------------------------------------------------
    def kill_connections(self) -> int:
        """Reset every open connection at once (clients see ``transport error``)."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
        for writer in list(self._accepting):
            writer.transport.abort()
        return len(conns)

    def refuse_connections(self, refuse: bool = True) -> None:
        self.refusing = refuse

    def go_silent(self, silent: bool = True) -> None:
        """Black-hole all traffic both ways; sockets stay open (no PINGs, no frames)."""
        self.silent = silent

    def stop_media_updates(self, stopped: bool = True) -> None:
        """The clock keeps time but sends no ``mediaUpdate`` (and does not advance the playlist)."""
        self.media_updates_stopped = stopped

    def drop_echoes(self, dropped: bool = True) -> None:
        """Record chat but do not echo it to its sender (the echo 'lost' with a dying connection)."""
        self.echoes_dropped = dropped

    def delay_replies(self, seconds: float) -> None:
        self.reply_delay = max(0.0, seconds)

    async def delay(self) -> None:
        if self.reply_delay > 0:
            await asyncio.sleep(self.reply_delay)

    async def send_malformed(self, room: str) -> int:
        """Send each socket in ``room`` wrong-typed payloads and one frame that is not JSON."""
        sent = 0
        for sid in self._room_sids(room):
            await self.sio.emit("chatMsg", {"username": 5, "msg": None}, to=sid)
            await self.sio.emit("usercount", "many", to=sid)
            await self.sio.emit(
                "chatMsg", {"username": "x", "msg": "y" * 50_000, "meta": {}, "time": 1}, to=sid
            )
            eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is not None:
                await self.sio.eio.send(eio_sid, '2["chatMsg",{not json')
            sent += 1
        return sent

    def _room_sids(self, room: str) -> list[str]:
        return [m.sid for m in self.channel(room).members if m.sid is not None]

    # ground truth -----------------------------------------------------------------------------
    def channel_state(self, room: str) -> ChannelSnapshot:
        """The server's own state of ``room`` as plain frozen data (see ``state.ChannelSnapshot``)."""
        return snapshot(self.channel(room))

    def chat_log(self, room: str) -> list[ChatRecord]:
        return list(self._chat.get(room.lower(), []))

    def chat_lines(self, room: str) -> list[ChatRecord]:
        """Public lines of ``room`` (the join backlog is the last 15 of these)."""
        return [r for r in self._chat.get(room, []) if r.to is None]

    def max_concurrent_sessions(self, account: str, room: str) -> int:
        return self._max_sessions.get((account.lower(), room.lower()), 0)

    def note_session(self, room: str, name: str) -> None:
        key = (name.lower(), room)
        current = sum(1 for m in self.channel(room).members if m.name is not None and m.lower == name.lower())
        self._max_sessions[key] = max(self._max_sessions[key], current)

    def sessions(self, room: str) -> list[str]:
        """Names logged in to ``room`` over a socket right now."""
        return sorted(m.name for m in self.channel(room).members if m.name is not None and m.sid is not None)

    @property
    def kicks(self) -> list[KickRecord]:
        """Every ``kick`` sent, oldest first (survives restarts)."""
        return list(self.kick_log)

    def kicks_by_reason(self) -> dict[str, int]:
        """How many kicks were sent per reason, e.g. ``{"Too many connections from your IP address": 2}``."""
        return dict(Counter(k.reason for k in self.kick_log))

    @property
    def login_refusals(self) -> list[LoginRefusal]:
        """Every ``login {success: false}`` sent, oldest first (survives restarts)."""
        return list(self.login_refusal_log)

    @property
    def guest_logins(self) -> list[float]:
        """``time.monotonic()`` of every successful guest login, oldest first (survives restarts)."""
        return list(self.guest_login_log)

    @property
    def duplicate_login_kicks(self) -> int:
        return sum(1 for k in self.kick_log if k.reason == DUPLICATE_LOGIN)

    def actions(self, room: str | None = None, event: str | None = None) -> list[ActionRecord]:
        """Every event frame clients sent (after connect), optionally for one room and/or event name."""
        room = room.lower() if room is not None else None
        return [
            a
            for a in self.actions_log
            if (room is None or a.room == room) and (event is None or a.event == event)
        ]

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # plumbing ----------------------------------------------------------------------------------
    async def kick_sid(self, sid: str, reason: str) -> None:
        sock = self.wire.socks.get(sid)
        if sock is not None:
            self.kick_log.append(KickRecord(reason, sock.ip, sock.channel, sock.name, now_ms()))
        await self.sio.emit("kick", {"reason": reason}, to=sid)
        await self.sio.disconnect(sid)

    async def kick_member(self, member: Member, reason: str) -> None:
        """``kick {reason}`` then disconnect; a simulated user just leaves (the kick is recorded)."""
        if member.sid is not None:
            await self.kick_sid(member.sid, reason)
            return
        for channel in self._channels.values():
            if member in channel.members:
                self.kick_log.append(KickRecord(reason, member.ip, channel.name, member.name, now_ms()))
                member.inbox.append(("kick", {"reason": reason}))
                await channel.leave(member)

    def record_chat(self, record: ChatRecord) -> None:
        self._chat[record.room].append(record)

    async def accept_chat(
        self, room: str, username: str, text: str, skip_sid: str | None = None
    ) -> ChatRecord:
        record = ChatRecord(room, username, text[:CHAT_LIMIT_CHARS], now_ms())
        self._chat[room].append(record)
        channel = self.channel(room)
        payload = chat_payload(record, filtered=channel.registered)
        for member in channel.members:
            if member.sid is None:
                member.inbox.append(("chatMsg", payload))
        await self.sio.emit("chatMsg", payload, room=room, skip_sid=skip_sid)
        return record

    async def _socketconfig(self, request: web.Request) -> web.Response:
        return web.json_response({"servers": [{"url": self.url, "secure": False}]})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        generation = self._generation
        self._accepting.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            writer.transport.abort()
            return
        finally:
            self._accepting.discard(writer)
        if generation != self._generation or writer.transport.is_closing():
            # The server was stopped (or the client reset) while the upstream leg was opening: a
            # stopped server holds no connections, so this one ends here.
            writer.transport.abort()
            up_writer.transport.abort()
            return
        conn = RelayConn(self, reader, writer, up_reader, up_writer)
        self._conns.add(conn)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)
