"""A fake CyTube server speaking CyTube's wire protocol, with fault controls. Public and documented.

Built on python-socketio's ``AsyncServer`` + aiohttp, it reproduces what daz depends on (see
docs/fake-cytube.md and the protocol notes): ``/socketconfig/<channel>.json``; ``rank -1`` on
connect; ``joinChannel`` with the join sequence and a 15-line backlog replay; guest and registered
login with the real rules (one guest login per IP per window, name rules, duplicate-login kick);
chat echo with HTML escaping and the 320-character cut; the chat limiter answering ``cooldown``;
the per-IP connection token bucket (``Rate limit exceeded``) and socket cap; ``userlist`` /
``addUser`` / ``userLeave``; ``changeMedia`` and ``mediaUpdate`` every few seconds while playing.

Clients connect through a small TCP relay that owns the public port; that is what makes the faults
real at the socket level: ``kill_connections()`` resets every socket, ``refuse_connections()``
closes new ones at once, ``stop()``/``start()`` release and re-bind the SAME port, ``go_silent()``
black-holes traffic both ways while keeping sockets open (no PINGs, no frames).

    async with FakeCytubeServer(ping_interval=0.5, ping_timeout=1.0) as server:
        config_url = server.url            # http://127.0.0.1:<port>
        ...
        server.chat_log("lobby")           # ground truth: every line the server accepted

Run it by hand: ``python -m daz.testing.fake_cytube --port 8099``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import socketio
import structlog
from aiohttp import web

log = structlog.get_logger("daz.testing.fake_cytube")

CHANNEL_NAME = re.compile(r"^[\w-]{1,30}$")
USER_NAME = re.compile(r"^[\w-]{1,20}$")
RESERVED_NAMES = frozenset({"admin", "owner", "administrator"})
CHAT_LIMIT_CHARS = 320
BACKLOG_LINES = 15
GUEST_RESTRICTED = "Guest logins are restricted to one per IP address per {window} seconds."
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """One line the server accepted (ground truth for tests): raw text as sent, cut at 320."""

    room: str
    username: str
    text: str
    time_ms: int
    to: str | None = None


@dataclass
class _Sock:
    sid: str
    ip: str
    channel: str | None = None
    name: str | None = None
    account: str | None = None  # registered account name, None for guests
    tokens: float = 20.0
    last_chat: float = 0.0


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
    sockets: set[str] = field(default_factory=set)
    media: _Media | None = None


class _Bucket:
    def __init__(self, size: float, refill_seconds: float) -> None:
        self.size = size
        self.refill = refill_seconds
        self.tokens = size
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.at) / self.refill)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FakeCytubeServer:
    """See the module docstring. All knobs are keyword arguments with CyTube's values as defaults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 25.0,
        ping_timeout: float = 120.0,
        guest_login_window_seconds: float = 60.0,
        connection_bucket_size: int = 5,
        connection_refill_seconds: float = 10.0,
        max_sockets_per_ip: int = 10,
        chat_burst: int = 20,
        chat_rate_per_second: float = 10.0,
        cooldown_ms: int = 100,
        media_update_interval: float = 5.0,
        accounts: dict[str, str] | None = None,
        channel_passwords: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.guest_login_window_seconds = guest_login_window_seconds
        self.connection_bucket_size = connection_bucket_size
        self.connection_refill_seconds = connection_refill_seconds
        self.max_sockets_per_ip = max_sockets_per_ip
        self.chat_burst = chat_burst
        self.chat_rate_per_second = chat_rate_per_second
        self.cooldown_ms = cooldown_ms
        self.media_update_interval = media_update_interval
        self.accounts = dict(accounts or {})
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
        self.duplicate_login_kicks = 0
        self.connections_total = 0
        self.rate_limited_total = 0
        self.restarts = 0
        # per-run state (forgotten on restart)
        self._socks: dict[str, _Sock] = {}
        self._channels: dict[str, _Channel] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._guest_logins: dict[str, float] = {}
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
        self._conns: set[_RelayConn] = set()
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
        self._buckets.clear()
        self._guest_logins.clear()
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
            record = ChatRecord(room, username, text[:CHAT_LIMIT_CHARS], _now_ms())
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
        for sock in list(self._socks.values()):
            if sock.channel == room and sock.name is not None and sock.name.lower() == username.lower():
                await self._kick(sock.sid, reason)

    # ground truth -----------------------------------------------------------------------------
    def chat_log(self, room: str) -> list[ChatRecord]:
        return list(self._chat.get(room, []))

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
        conn = _RelayConn(self, reader, writer, up_reader, up_writer)
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
        sio.on("joinChannel", self._on_join)
        sio.on("channelPassword", self._on_channel_password)
        sio.on("login", self._on_login)
        sio.on("chatMsg", self._on_chat)
        sio.on("pm", self._on_pm)

    async def _socketconfig(self, request: web.Request) -> web.Response:
        return web.json_response({"servers": [{"url": self.url, "secure": False}]})

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        ip = str(environ.get("REMOTE_ADDR") or "127.0.0.1")
        bucket = self._buckets.setdefault(
            ip, _Bucket(self.connection_bucket_size, self.connection_refill_seconds)
        )
        if not bucket.take():
            self.rate_limited_total += 1
            raise socketio.exceptions.ConnectionRefusedError("Rate limit exceeded")
        self.connections_total += 1
        self._socks[sid] = _Sock(sid, ip, tokens=float(self.chat_burst))
        await self._sio.emit("rank", -1, to=sid)
        if sum(1 for s in self._socks.values() if s.ip == ip) > self.max_sockets_per_ip:
            await self._kick(sid, "Too many connections from your IP address")

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        sock = self._socks.pop(sid, None)
        if sock is None or sock.channel is None:
            return
        channel = self._channel(sock.channel)
        channel.sockets.discard(sid)
        if sock.name is not None:
            await self._sio.emit("userLeave", {"name": sock.name}, room=channel.name)
        await self._sio.emit("usercount", self._usercount(channel), room=channel.name)

    async def _on_join(self, sid: str, data: Any = None) -> None:
        await self._delay()
        sock = self._socks.get(sid)
        if sock is None or sock.channel is not None:
            return
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not CHANNEL_NAME.match(name):
            await self._sio.emit("errorMsg", {"msg": "Invalid channel name"}, to=sid)
            await self._kick(sid, "Invalid channel name")
            return
        sock.channel = name
        if name in self.channel_passwords:
            await self._sio.emit("needPassword", False, to=sid)
            return
        await self._join_sequence(sock)

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
        await emit("channelNotRegistered", None, to=sid)

    async def _on_login(self, sid: str, data: Any = None) -> None:
        await self._delay()
        sock = self._socks.get(sid)
        if sock is None or sock.name is not None or not isinstance(data, dict):
            return
        name = data.get("name")
        password = data.get("pw")
        if not isinstance(name, str):
            return
        error = self._login_error(sock, name, password)
        if error is not None:
            await self._sio.emit("login", {"success": False, "error": error}, to=sid)
            return
        registered = password is not None
        if registered:
            await self._kick_duplicates(sock, name)
            sock.account = name.lower()
        else:
            self._guest_logins[sock.ip] = time.monotonic()
        sock.name = name
        reply: dict[str, Any] = {"success": True, "name": name}
        if not registered:
            reply["guest"] = True
        await self._sio.emit("login", reply, to=sid)
        await self._sio.emit("rank", 1 if registered else 0, to=sid)
        if sock.channel is not None and sid in self._channel(sock.channel).sockets:
            channel = self._channel(sock.channel)
            key = (name.lower(), channel.name)
            current = sum(1 for s in channel.sockets if self._socks.get(s, sock).name == name)
            self._max_sessions[key] = max(self._max_sessions[key], current)
            await self._sio.emit("addUser", self._user_payload(sock), room=channel.name)
            await self._sio.emit("usercount", self._usercount(channel), room=channel.name)

    def _login_error(self, sock: _Sock, name: str, password: Any) -> str | None:
        if password is not None:
            stored = self.accounts.get(name)
            if stored is None:
                return "User does not exist"
            if password != stored:
                return "Invalid username/password combination"
            return None
        last = self._guest_logins.get(sock.ip)
        window = self.guest_login_window_seconds
        if window > 0 and last is not None and time.monotonic() - last < window:
            return GUEST_RESTRICTED.format(window=f"{window:g}")
        if not USER_NAME.match(name):
            return (
                "Invalid username.  Usernames must be 1-20 characters long and consist only of "
                "characters a-z, A-Z, 0-9, -, _, and accented letters."
            )
        if name.lower() in RESERVED_NAMES:
            return "That username is reserved."
        if name in self.accounts:
            return "That username is registered."
        if sock.channel is not None and any(
            self._socks[s].name is not None and str(self._socks[s].name).lower() == name.lower()
            for s in self._channel(sock.channel).sockets
            if s in self._socks
        ):
            return "That name is already taken"
        return None

    async def _kick_duplicates(self, sock: _Sock, name: str) -> None:
        for other in list(self._socks.values()):
            if other.sid != sock.sid and other.channel == sock.channel and other.account == name.lower():
                self.duplicate_login_kicks += 1
                await self._kick(other.sid, "Duplicate login")

    async def _on_chat(self, sid: str, data: Any = None) -> None:
        await self._delay()
        sock = self._socks.get(sid)
        if sock is None or sock.name is None or sock.channel is None or not isinstance(data, dict):
            return  # chat before join/login is dropped silently, as on the real server
        msg = data.get("msg")
        if not isinstance(msg, str) or not msg.strip():
            return
        if not self._allow_chat(sock):
            await self._sio.emit("cooldown", self.cooldown_ms, to=sid)
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
            await self._sio.emit("cooldown", self.cooldown_ms, to=sid)
            return
        record = ChatRecord(sock.channel, sock.name, msg[:CHAT_LIMIT_CHARS], _now_ms(), to=target.name)
        self._chat[sock.channel].append(record)
        payload = {**self._chat_payload(record), "to": target.name}
        await self._sio.emit("pm", payload, to=sid)
        await self._sio.emit("pm", payload, to=target.sid)

    def _allow_chat(self, sock: _Sock) -> bool:
        now = time.monotonic()
        if now - sock.last_chat > 2.0:
            sock.tokens = float(self.chat_burst)  # the limiter resets after 2 s of quiet
        else:
            sock.tokens = min(
                float(self.chat_burst), sock.tokens + (now - sock.last_chat) * self.chat_rate_per_second
            )
        sock.last_chat = now
        if sock.tokens >= 1:
            sock.tokens -= 1
            return True
        return False

    async def _accept_chat(
        self, room: str, username: str, text: str, skip_sid: str | None = None
    ) -> ChatRecord:
        record = ChatRecord(room, username, text[:CHAT_LIMIT_CHARS], _now_ms())
        self._chat[room].append(record)
        await self._sio.emit("chatMsg", self._chat_payload(record), room=room, skip_sid=skip_sid)
        return record

    # helpers -----------------------------------------------------------------------------------
    async def _kick(self, sid: str, reason: str) -> None:
        await self._sio.emit("kick", {"reason": reason}, to=sid)
        await self._sio.disconnect(sid)

    async def _delay(self) -> None:
        if self.reply_delay > 0:
            await asyncio.sleep(self.reply_delay)

    def _channel(self, name: str) -> _Channel:
        return self._channels.setdefault(name, _Channel(name))

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


class _RelayConn:
    """One client connection: bytes pumped both ways unless the server is 'silent'."""

    def __init__(
        self,
        server: FakeCytubeServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.reader, self.writer = reader, writer
        self.up_reader, self.up_writer = up_reader, up_writer

    def abort(self) -> None:
        self.writer.transport.abort()
        self.up_writer.transport.abort()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(self.reader, self.up_writer, downstream=False), name="relay.up")
                group.create_task(self._pipe(self.up_reader, self.writer, downstream=True), name="relay.down")
        finally:
            self.abort()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, downstream: bool
    ) -> None:
        try:
            while True:
                chunk = await source.read(_CHUNK)
                if not chunk:
                    break
                if self.server.silent:
                    continue  # black hole: nothing passes, nothing is closed
                sink.write(chunk)
                await sink.drain()
        except OSError:
            return
        if downstream and self.server.silent:
            # The server side gave up (no PONGs); a black-holed client must not notice: keep it open
            # until the client itself hangs up.
            with contextlib.suppress(OSError):
                while await self.reader.read(_CHUNK):
                    pass
            return
        with contextlib.suppress(OSError):
            sink.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _serve(args: argparse.Namespace) -> None:
    server = FakeCytubeServer(
        host=args.host,
        port=args.port,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        guest_login_window_seconds=args.guest_window,
        connection_bucket_size=args.connection_bucket,
        max_sockets_per_ip=args.max_sockets,
        media_update_interval=args.media_interval,
    )
    async with server:
        print(f"fake CyTube listening on {server.url}", flush=True)  # noqa: T201 - CLI output
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m daz.testing.fake_cytube", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=25.0)
    parser.add_argument("--ping-timeout", type=float, default=120.0)
    parser.add_argument(
        "--guest-window", type=float, default=60.0, help="seconds between guest logins per IP"
    )
    parser.add_argument(
        "--connection-bucket", type=int, default=5, help="connection token bucket size per IP"
    )
    parser.add_argument("--max-sockets", type=int, default=10, help="concurrent sockets per IP")
    parser.add_argument("--media-interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
