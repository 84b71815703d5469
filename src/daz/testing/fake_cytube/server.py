"""The fake CyTube server: lifecycle, sockets, sessions and login (see the package docstring)."""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import socketio
import structlog
from aiohttp import web

from daz.testing.fake_cytube import names
from daz.testing.fake_cytube.limits import ConnectionGate, CytubeLimits, FloodLimiter
from daz.testing.fake_cytube.records import (
    BANNED_BY_MODERATOR,
    BANNED_ON_JOIN,
    DUPLICATE_LOGIN,
    RATE_LIMIT_EXCEEDED,
    TOO_MANY_CONNECTIONS,
    ActionRecord,
    ChatRecord,
    KickRecord,
    LoginRefusal,
    now_ms,
)
from daz.testing.fake_cytube.relay import RelayConn

log = structlog.get_logger("daz.testing.fake_cytube")

CHAT_LIMIT_CHARS = 320
BACKLOG_LINES = 15


@dataclass
class _Sock:
    sid: str
    ip: str
    channel: str | None = None
    name: str | None = None
    account: str | None = None  # registered account name, None for guests
    chat: FloodLimiter | None = None  # None when limits are off


@dataclass
class _Media:
    media_id: str
    title: str
    seconds: float
    media_type: str
    started: float
    paused: bool = False

    @property
    def live(self) -> bool:
        return self.seconds <= 0

    def current_time(self) -> float:
        return time.monotonic() - self.started - 3.0


@dataclass
class _Channel:
    name: str
    registered: bool = False
    sockets: set[str] = field(default_factory=set)
    media: _Media | None = None
    banned_names: set[str] = field(default_factory=set)  # lower-case names
    banned_ips: set[str] = field(default_factory=set)


class FakeCytubeServer:
    """See the module docstring. All knobs are keyword arguments with CyTube's values as defaults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 25.0,
        ping_timeout: float = 120.0,
        limits: CytubeLimits | None = None,
        media_update_interval: float = 5.0,
        accounts: dict[str, str] | None = None,
        channel_passwords: dict[str, str] | None = None,
        registered_channels: Iterable[str] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.limits = limits if limits is not None else CytubeLimits()
        self.media_update_interval = media_update_interval
        # account lookups are case-insensitive on CyTube; the stored spelling is the display name
        self.accounts = {name.lower(): (name, pw) for name, pw in (accounts or {}).items()}
        self._registered = {name.lower() for name in registered_channels}
        self.channel_passwords = dict(channel_passwords or {})
        # faults
        self.silent = False
        self.refusing = False
        self.media_updates_stopped = False
        self.reply_delay = 0.0
        self.echoes_dropped = False
        # ground truth and counters (survive restarts, like CyTube's persisted chat buffer)
        self._chat: dict[str, list[ChatRecord]] = defaultdict(list)
        self._max_sessions: dict[tuple[str, str], int] = defaultdict(int)
        self._kicks: list[KickRecord] = []
        self._login_refusals: list[LoginRefusal] = []
        self._actions: list[ActionRecord] = []
        self.connections_total = 0
        self.refused_connects = 0
        self.restarts = 0
        # per-run state (forgotten on restart)
        self._socks: dict[str, _Sock] = {}
        self._channels: dict[str, _Channel] = {}
        self._gate = ConnectionGate(self.limits)
        # plumbing
        self._sio = socketio.AsyncServer(
            async_mode="aiohttp",
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            cors_allowed_origins="*",
            async_handlers=False,
            logger=False,
            engineio_logger=False,
        )
        self._app = web.Application()
        self._sio.attach(self._app)
        self._app.router.add_get("/socketconfig/{channel}.json", self._socketconfig)
        self._register()
        self._runner: web.AppRunner | None = None
        self._upstream_port = 0
        self._relay: asyncio.Server | None = None
        self._conns: set[RelayConn] = set()
        self._group: asyncio.TaskGroup | None = None
        self._media_task: asyncio.Task[None] | None = None

    # lifecycle -------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeCytubeServer:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._upstream_port = int(self._runner.addresses[0][1])
        self._media_task = self._group.create_task(self._media_loop(), name="fake_cytube.media")
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._media_task is not None:
            self._media_task.cancel()
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

    async def start(self) -> None:
        """(Re)bind the public port; after ``stop`` the SAME port is used again."""
        if self._relay is not None:
            return
        self._relay = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = int(self._relay.sockets[0].getsockname()[1])
        log.info("fake_cytube.started", port=self.port)

    async def stop(self) -> None:
        """Stop listening and drop every connection; the server forgets sessions (not the chat)."""
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.close()
        self.kill_connections()
        if relay is not None:
            await relay.wait_closed()
        self._socks.clear()
        self._channels_reset()
        self._gate.reset()
        log.info("fake_cytube.stopped", port=self.port)

    async def restart(self, down_for: float = 0.0) -> None:
        await self.stop()
        if down_for > 0:
            await asyncio.sleep(down_for)
        self.restarts += 1
        await self.start()

    def _channels_reset(self) -> None:
        for channel in self._channels.values():
            channel.sockets.clear()

    # fault controls ---------------------------------------------------------------------------
    def kill_connections(self) -> int:
        """Reset every open connection at once (clients see ``transport error``)."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
        return len(conns)

    def refuse_connections(self, refuse: bool = True) -> None:
        self.refusing = refuse

    def go_silent(self, silent: bool = True) -> None:
        """Black-hole all traffic both ways; sockets stay open (no PINGs, no frames)."""
        self.silent = silent

    def stop_media_updates(self, stopped: bool = True) -> None:
        self.media_updates_stopped = stopped

    def drop_echoes(self, dropped: bool = True) -> None:
        """Record chat but do not echo it to its sender (the echo 'lost' with a dying connection)."""
        self.echoes_dropped = dropped

    def delay_replies(self, seconds: float) -> None:
        self.reply_delay = max(0.0, seconds)

    async def send_malformed(self, room: str) -> int:
        """Send each socket in ``room`` wrong-typed payloads and one frame that is not JSON."""
        sent = 0
        for sid in list(self._channel(room).sockets):
            await self._sio.emit("chatMsg", {"username": 5, "msg": None}, to=sid)
            await self._sio.emit("usercount", "many", to=sid)
            await self._sio.emit(
                "chatMsg", {"username": "x", "msg": "y" * 50_000, "meta": {}, "time": 1}, to=sid
            )
            eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is not None:
                await self._sio.eio.send(eio_sid, '2["chatMsg",{not json')
            sent += 1
        return sent

    # simulation controls ----------------------------------------------------------------------
    async def say(self, room: str, username: str, text: str) -> ChatRecord:
        """A simulated user says ``text`` in ``room`` (recorded and broadcast)."""
        return await self._accept_chat(room, username, text)

    async def say_many(self, room: str, lines: list[tuple[str, str]]) -> int:
        """Bulk ``say`` for benchmarks: the same records and the same wire frames, encoded once each.

        Each line is recorded exactly as ``say`` records it; its Socket.IO frame is encoded here
        (python-socketio's own compact JSON) and queued straight to every socket in the room, skipping
        the per-emit room lookup and packet objects, so the server is not what limits a client
        benchmark. Returns the number of lines.
        """
        frames: list[str] = []
        for username, text in lines:
            record = ChatRecord(room, username, text[:CHAT_LIMIT_CHARS], now_ms())
            self._chat[room].append(record)
            frames.append("2" + json.dumps(["chatMsg", self._chat_payload(record)], separators=(",", ":")))
        for sid in list(self._channel(room).sockets):
            eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is None:
                continue
            for frame in frames:
                await self._sio.eio.send(eio_sid, frame)
        return len(frames)

    async def play(
        self,
        room: str,
        *,
        media_id: str = "dQw4w9WgXcQ",
        title: str = "video",
        seconds: float = 212.0,
        media_type: str = "yt",
    ) -> None:
        """Start an item (``seconds <= 0`` = live: no mediaUpdate is ever sent for it)."""
        channel = self._channel(room)
        channel.media = _Media(media_id, title, seconds, media_type, time.monotonic())
        await self._sio.emit("changeMedia", self._media_payload(channel.media), room=room)

    async def pause(self, room: str, paused: bool = True) -> None:
        media = self._channel(room).media
        if media is not None:
            media.paused = paused
            await self._sio.emit(
                "mediaUpdate", {"currentTime": media.current_time(), "paused": paused}, room=room
            )

    async def kick(self, room: str, username: str, reason: str) -> None:
        """A moderator's ``/kick``: ``kick {reason}`` to the user, then disconnect."""
        for sock in self._named(room, username):
            await self._kick(sock.sid, reason)

    def register_channel(self, room: str, registered: bool = True) -> None:
        """Make ``room`` a registered channel (bans apply; no ``channelNotRegistered``) or not."""
        self._channel(room).registered = registered

    async def ban(self, room: str, *, name: str | None = None, ip: str | None = None) -> None:
        """A moderator's ``/ban`` (name) or ``/ipban`` (IP): present matches are kicked "You're banned!",
        later joins get "You are banned from this channel." Bans exist in registered channels only."""
        channel = self._channel(room)
        if not channel.registered:
            raise ValueError(f"ban: channel {room!r} is not registered (CyTube has no bans there); "
                             "call register_channel first")
        if name is None and ip is None:
            raise ValueError("ban: give name= or ip=")
        if name is not None:
            channel.banned_names.add(name.lower())
        if ip is not None:
            channel.banned_ips.add(ip)
        for sid in list(channel.sockets):
            sock = self._socks.get(sid)
            if sock is not None and (
                (name is not None and sock.name is not None and sock.name.lower() == name.lower())
                or (ip is not None and sock.ip == ip)
            ):
                await self._kick(sid, BANNED_BY_MODERATOR)

    def unban(self, room: str, *, name: str | None = None, ip: str | None = None) -> None:
        channel = self._channel(room)
        if name is not None:
            channel.banned_names.discard(name.lower())
        if ip is not None:
            channel.banned_ips.discard(ip)

    # ground truth -----------------------------------------------------------------------------
    def chat_log(self, room: str) -> list[ChatRecord]:
        return list(self._chat.get(room, []))

    @property
    def kicks(self) -> list[KickRecord]:
        """Every ``kick`` sent, oldest first (survives restarts)."""
        return list(self._kicks)

    def kicks_by_reason(self) -> dict[str, int]:
        """How many kicks were sent per reason, e.g. ``{"Too many connections from your IP address": 2}``."""
        return dict(Counter(k.reason for k in self._kicks))

    @property
    def login_refusals(self) -> list[LoginRefusal]:
        """Every ``login {success: false}`` sent, oldest first (survives restarts)."""
        return list(self._login_refusals)

    @property
    def duplicate_login_kicks(self) -> int:
        return sum(1 for k in self._kicks if k.reason == DUPLICATE_LOGIN)

    def actions(self, room: str | None = None, event: str | None = None) -> list[ActionRecord]:
        """Every event frame clients sent (after connect), optionally for one room and/or event name."""
        return [
            a for a in self._actions
            if (room is None or a.room == room) and (event is None or a.event == event)
        ]

    def max_concurrent_sessions(self, account: str, room: str) -> int:
        return self._max_sessions.get((account.lower(), room), 0)

    def sessions(self, room: str) -> list[str]:
        """Names logged in to ``room`` right now."""
        return sorted(s.name for s in self._socks.values() if s.channel == room and s.name is not None)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # relay ------------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            writer.transport.abort()
            return
        conn = RelayConn(self, reader, writer, up_reader, up_writer)
        self._conns.add(conn)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)

    # socket.io handlers ------------------------------------------------------------------------
    def _register(self) -> None:
        sio = self._sio
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        handlers: dict[str, Callable[[str, Any], Awaitable[None]]] = {
            "joinChannel": self._on_join,
            "channelPassword": self._on_channel_password,
            "login": self._on_login,
            "chatMsg": self._on_chat,
            "pm": self._on_pm,
        }
        for event, handler in handlers.items():
            sio.on(event, self._recorded(event, handler))
        sio.on("*", self._on_other)

    def _recorded(
        self, event: str, handler: Callable[[str, Any], Awaitable[None]]
    ) -> Callable[[str, Any], Awaitable[None]]:
        async def run(sid: str, data: Any = None) -> None:
            self._record_action(event, sid, data)
            await handler(sid, data)

        return run

    async def _on_other(self, event: str, sid: str, data: Any = None) -> None:
        self._record_action(event, sid, data)  # an event this server does not handle: dropped silently

    def _record_action(self, event: str, sid: str, data: Any) -> None:
        sock = self._socks.get(sid)
        if sock is None:
            return
        room = sock.channel
        asked = data.get("name") if event == "joinChannel" and isinstance(data, dict) else None
        if room is None and isinstance(asked, str):
            room = asked.lower()  # the room this frame asks for
        self._actions.append(ActionRecord(event, data, sock.ip, room, sock.name, now_ms()))

    async def _socketconfig(self, request: web.Request) -> web.Response:
        return web.json_response({"servers": [{"url": self.url, "secure": False}]})

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        ip = _client_ip(environ)
        if not self._gate.admit(ip):
            self.refused_connects += 1  # a refused attempt costs no token (CyTube's bucket)
            raise socketio.exceptions.ConnectionRefusedError(RATE_LIMIT_EXCEEDED)
        self.connections_total += 1
        self._socks[sid] = _Sock(sid, ip, chat=self._gate.chat_limiter())
        over_cap = not self._gate.opened(ip)
        # Anything sent from inside this handler would precede Socket.IO's CONNECT packet (and a
        # disconnect here would be lost): greet, or kick, once the connection is established.
        assert self._group is not None  # noqa: S101 - handlers only run inside `async with`
        self._group.create_task(self._greet(sid, over_cap=over_cap), name="fake_cytube.greet")

    async def _greet(self, sid: str, *, over_cap: bool) -> None:
        for _ in range(1000):  # bounded: CONNECT is sent right after the connect handler returns
            if self._sio.manager.is_connected(sid, "/"):
                break
            await asyncio.sleep(0.001)
        else:
            return
        await self._sio.emit("rank", -1, to=sid)
        if over_cap:
            # CyTube 3.86 accepts the socket (its token is spent) and then kicks it.
            await self._kick(sid, TOO_MANY_CONNECTIONS)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        sock = self._socks.pop(sid, None)
        if sock is None:
            return
        self._gate.closed(sock.ip)
        if sock.channel is None:
            return
        channel = self._channel(sock.channel)
        if sid not in channel.sockets:
            return
        channel.sockets.discard(sid)
        if sock.name is not None:
            await self._sio.emit("userLeave", {"name": sock.name}, room=channel.name)
        await self._sio.emit("usercount", self._usercount(channel), room=channel.name)

    async def _on_join(self, sid: str, data: Any = None) -> None:
        await self._delay()
        sock = self._socks.get(sid)
        if sock is None or sock.channel is not None:
            return  # one join per connection
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            return  # CyTube ignores a malformed joinChannel
        if not names.valid_channel_name(name) and self.limits.enabled:
            await self._sio.emit("errorMsg", {"msg": names.INVALID_CHANNEL_MSG}, to=sid)
            await self._kick(sid, names.INVALID_CHANNEL_KICK)
            return
        name = name.lower()
        sock.channel = name
        channel = self._channel(name)
        if self._banned(channel, sock):
            await self._kick(sid, BANNED_ON_JOIN)
            return
        if name in self.channel_passwords:
            await self._sio.emit("needPassword", False, to=sid)
            return
        await self._join_sequence(sock)

    def _banned(self, channel: _Channel, sock: _Sock) -> bool:
        if not channel.registered or not self.limits.enabled:
            return False  # unregistered channels have no ban list
        if sock.ip in channel.banned_ips:
            return True
        return sock.name is not None and sock.name.lower() in channel.banned_names

    async def _on_channel_password(self, sid: str, data: Any = None) -> None:
        sock = self._socks.get(sid)
        if sock is None or sock.channel is None or sid in self._channel(sock.channel).sockets:
            return
        if data != self.channel_passwords.get(sock.channel):
            await self._sio.emit("needPassword", True, to=sid)
            return
        await self._sio.emit("cancelNeedPassword", None, to=sid)
        await self._join_sequence(sock)

    async def _join_sequence(self, sock: _Sock) -> None:
        assert sock.channel is not None  # noqa: S101 - set by the caller
        channel = self._channel(sock.channel)
        emit = self._sio.emit
        sid = sock.sid
        await self._sio.enter_room(sid, channel.name)
        channel.sockets.add(sid)
        await emit("setPermissions", {}, to=sid)
        await emit("setPlaylistLocked", True, to=sid)
        await emit("emoteList", [], to=sid)
        for record in self._chat.get(channel.name, [])[-BACKLOG_LINES:]:
            if record.to is None:
                await emit("chatMsg", self._chat_payload(record), to=sid)
        await emit("drinkCount", 0, to=sid)
        await emit("channelCSSJS", {"css": "", "js": ""}, to=sid)
        await emit("setMotd", "", to=sid)
        await emit("channelOpts", {"allow_voteskip": True, "chat_antiflood": False}, to=sid)
        await emit("setPlaylistMeta", {"count": 0, "rawTime": 0, "time": "00:00"}, to=sid)
        await emit("playlist", [], to=sid)
        if channel.media is not None:
            await emit("setCurrent", 1, to=sid)
            await emit("changeMedia", self._media_payload(channel.media), to=sid)
            if not channel.media.live:
                await emit(
                    "mediaUpdate",
                    {"currentTime": channel.media.current_time(), "paused": channel.media.paused},
                    to=sid,
                )
        await emit(
            "userlist",
            [
                self._user_payload(self._socks[s])
                for s in channel.sockets
                if s in self._socks and self._socks[s].name is not None
            ],
            to=sid,
        )
        await emit("usercount", self._usercount(channel), to=sid)
        if not channel.registered:
            await emit("channelNotRegistered", None, to=sid)

    async def _on_login(self, sid: str, data: Any = None) -> None:
        await self._delay()
        sock = self._socks.get(sid)
        if sock is None or sock.name is not None or not isinstance(data, dict):
            return
        name = data.get("name")
        password = data.get("pw") or ""
        if not isinstance(name, str):
            return
        if not isinstance(password, str):
            password = ""
        registered = bool(password)
        error = self._login_error(sock, name, password)
        if error is not None:
            self._login_refusals.append(
                LoginRefusal(error, sock.ip, sock.channel, name, not registered, now_ms())
            )
            await self._sio.emit("login", {"success": False, "error": error}, to=sid)
            return
        if registered:
            name = self.accounts[name.lower()][0]
            await self._kick_duplicates(sock, name)
            sock.account = name.lower()
        else:
            self._gate.guest_logged_in(sock.ip)
        sock.name = name
        reply: dict[str, Any] = {"success": True, "name": name}
        if not registered:
            reply["guest"] = True
        await self._sio.emit("login", reply, to=sid)
        await self._sio.emit("rank", 1 if registered else 0, to=sid)
        if sock.channel is not None and sid in self._channel(sock.channel).sockets:
            channel = self._channel(sock.channel)
            if self._banned(channel, sock):
                await self._kick(sid, BANNED_ON_JOIN)
                return
            key = (name.lower(), channel.name)
            current = sum(1 for s in channel.sockets if self._socks.get(s, sock).name == name)
            self._max_sessions[key] = max(self._max_sessions[key], current)
            await self._sio.emit("addUser", self._user_payload(sock), room=channel.name)
            await self._sio.emit("usercount", self._usercount(channel), room=channel.name)

    def _login_error(self, sock: _Sock, name: str, password: str) -> str | None:
        if password:
            account = self.accounts.get(name.lower())
            if account is None:
                return names.NO_SUCH_USER
            if password != account[1]:
                return names.BAD_PASSWORD
            return None
        if not self.limits.enabled:
            return self._name_in_use(sock, name)
        # CyTube checks the guest window first (user.js guestLogin), then the name.
        if not self._gate.guest_window_open(sock.ip):
            return names.GUEST_RESTRICTED.format(window=self.limits.guest_window_text)
        if not names.valid_user_name(name):
            return names.INVALID_USERNAME
        if name.lower() in names.RESERVED_NAMES:
            return names.NAME_RESERVED
        if name.lower() in self.accounts:
            return names.NAME_REGISTERED
        return self._name_in_use(sock, name)

    def _name_in_use(self, sock: _Sock, name: str) -> str | None:
        if sock.channel is not None and self._named(sock.channel, name):
            return names.NAME_IN_USE
        return None

    def _named(self, room: str, username: str) -> list[_Sock]:
        """Logged-in sockets in ``room`` named ``username`` (case-insensitive, as CyTube compares)."""
        lower = username.lower()
        return [
            sock
            for sid in self._channel(room).sockets
            if (sock := self._socks.get(sid)) is not None
            and sock.name is not None
            and sock.name.lower() == lower
        ]

    async def _kick_duplicates(self, sock: _Sock, name: str) -> None:
        for other in list(self._socks.values()):
            if other.sid != sock.sid and other.channel == sock.channel and other.account == name.lower():
                await self._kick(other.sid, DUPLICATE_LOGIN)

    async def _on_chat(self, sid: str, data: Any = None) -> None:
        await self._delay()
        sock = self._socks.get(sid)
        if sock is None or sock.name is None or sock.channel is None or not isinstance(data, dict):
            return  # chat before join/login is dropped silently, as on the real server
        msg = data.get("msg")
        if not isinstance(msg, str) or not msg.strip():
            return
        if not self._allow_chat(sock):
            await self._sio.emit("cooldown", self.limits.chat_cooldown_ms, to=sid)
            return
        await self._accept_chat(sock.channel, sock.name, msg, skip_sid=sid if self.echoes_dropped else None)

    async def _on_pm(self, sid: str, data: Any = None) -> None:
        await self._delay()
        sock = self._socks.get(sid)
        if sock is None or sock.name is None or sock.channel is None or not isinstance(data, dict):
            return
        msg, to = data.get("msg"), data.get("to")
        if not isinstance(msg, str) or not isinstance(to, str) or not msg.strip():
            return
        target = next(
            (
                s
                for s in self._socks.values()
                if s.channel == sock.channel and s.name is not None and s.name.lower() == to.lower()
            ),
            None,
        )
        if target is None:
            await self._sio.emit("errorMsg", {"msg": f"{to} is not on this channel"}, to=sid)
            return
        if not self._allow_chat(sock):
            await self._sio.emit("cooldown", self.limits.chat_cooldown_ms, to=sid)
            return
        record = ChatRecord(sock.channel, sock.name, msg[:CHAT_LIMIT_CHARS], now_ms(), to=target.name)
        self._chat[sock.channel].append(record)
        payload = {**self._chat_payload(record), "to": target.name}
        await self._sio.emit("pm", payload, to=sid)
        await self._sio.emit("pm", payload, to=target.sid)

    @staticmethod
    def _allow_chat(sock: _Sock) -> bool:
        return sock.chat is None or sock.chat.allow()

    async def _accept_chat(
        self, room: str, username: str, text: str, skip_sid: str | None = None
    ) -> ChatRecord:
        record = ChatRecord(room, username, text[:CHAT_LIMIT_CHARS], now_ms())
        self._chat[room].append(record)
        await self._sio.emit("chatMsg", self._chat_payload(record), room=room, skip_sid=skip_sid)
        return record

    # helpers -----------------------------------------------------------------------------------
    async def _kick(self, sid: str, reason: str) -> None:
        sock = self._socks.get(sid)
        if sock is not None:
            self._kicks.append(KickRecord(reason, sock.ip, sock.channel, sock.name, now_ms()))
        await self._sio.emit("kick", {"reason": reason}, to=sid)
        await self._sio.disconnect(sid)

    async def _delay(self) -> None:
        if self.reply_delay > 0:
            await asyncio.sleep(self.reply_delay)

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name, registered=name in self._registered)
        return channel

    def _usercount(self, channel: _Channel) -> int:
        return len(channel.sockets)

    def _user_payload(self, sock: _Sock) -> dict[str, Any]:
        rank = 1 if sock.account is not None else 0
        return {
            "name": sock.name,
            "rank": rank,
            "profile": {"image": "", "text": ""},
            "meta": {"afk": False, "muted": False},
        }

    @staticmethod
    def _chat_payload(record: ChatRecord) -> dict[str, Any]:
        text = record.text
        action = text.startswith("/me ")
        if action:
            text = text[4:]
        return {
            "username": record.username,
            "msg": html.escape(text, quote=True),
            "time": record.time_ms,
            "meta": {"action": True} if action else {},
        }

    @staticmethod
    def _media_payload(media: _Media) -> dict[str, Any]:
        return {
            "id": media.media_id,
            "title": media.title,
            "seconds": media.seconds,
            "duration": "",
            "type": media.media_type,
            "meta": {},
            "currentTime": -3,
            "paused": False,
        }

    async def _media_loop(self) -> None:
        while True:
            await asyncio.sleep(self.media_update_interval)
            if self.media_updates_stopped or self._relay is None:
                continue
            for channel in list(self._channels.values()):
                media = channel.media
                if media is None or media.live or media.paused or not channel.sockets:
                    continue
                if media.current_time() > media.seconds:
                    channel.media = None  # finished: an idle channel sends nothing
                    continue
                await self._sio.emit(
                    "mediaUpdate", {"currentTime": media.current_time(), "paused": False}, room=channel.name
                )


def _client_ip(environ: dict[str, Any]) -> str:
    """The client's address as CyTube sees it: X-Forwarded-For is trusted from loopback only.

    Every client reaches the Socket.IO server through the relay (127.0.0.1), so, like CyTube behind
    ``proxyaddr(trust 127.0.0.1)``, the rightmost forwarded address that is not loopback is the client;
    tests use distinct ``X-Forwarded-For`` values to be distinct IPs.
    """
    remote = str(environ.get("REMOTE_ADDR") or "127.0.0.1")
    if remote not in _LOOPBACK:
        return remote
    forwarded = [p.strip() for p in str(environ.get("HTTP_X_FORWARDED_FOR") or "").split(",") if p.strip()]
    for address in reversed(forwarded):
        if address not in _LOOPBACK:
            return address
    return forwarded[0] if forwarded else remote


_LOOPBACK = frozenset({"127.0.0.1", "::1"})
