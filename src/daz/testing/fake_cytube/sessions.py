"""Socket.IO handlers of the fake server: connect, join, login, chat, pm and channel actions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socketio

from daz.testing.fake_cytube import names, typecheck
from daz.testing.fake_cytube.channel import FakeChannel
from daz.testing.fake_cytube.limits import FloodLimiter
from daz.testing.fake_cytube.members import ADMIN_RANK, Member
from daz.testing.fake_cytube.moderation import MUTED_NOTICE
from daz.testing.fake_cytube.records import (
    BANNED_ON_JOIN,
    DUPLICATE_LOGIN,
    RATE_LIMIT_EXCEEDED,
    TOO_MANY_CONNECTIONS,
    ActionRecord,
    ChatRecord,
    LoginRefusal,
    now_ms,
)

if TYPE_CHECKING:
    from daz.testing.fake_cytube.server import FakeCytubeServer

CHAT_LIMIT_CHARS = 320
BACKLOG_LINES = 15
CHANNEL_EVENTS = (
    "queue",
    "delete",
    "setTemp",
    "moveMedia",
    "jumpTo",
    "playNext",
    "clearPlaylist",
    "shufflePlaylist",
    "togglePlaylistLock",
    "assignLeader",
    "mediaUpdate",
    "playerReady",
    "requestPlaylist",
    "newPoll",
    "vote",
    "closePoll",
    "setOptions",
    "setPermissions",
    "setMotd",
    "setChannelRank",
    "requestBanlist",
    "unban",
    "voteskip",
)
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


@dataclass(eq=False)
class Sock:
    sid: str
    ip: str
    channel: str | None = None
    member: Member | None = None  # set once the join sequence ran
    name: str | None = None
    account: str | None = None  # registered account name (lower case), None for guests
    global_rank: float = -1.0
    chat: FloodLimiter | None = None  # None when limits are off


_CONTROL = re.compile(r"[\x00-\x1f]+")  # CyTube: ASCII control runs → one space unless allow_ascii_control

# CyTube's chat link filter (applied after escaping, so `&` in a URL is already `&amp;`)
_LINK = re.compile(r"(\w+://(?:[^:/\[\]\s]+|\[[0-9a-f:]+\])(?::\d+)?(?:/[^/\s]*)*)", re.IGNORECASE)


# A registered channel's default chat filters (filters.js DEFAULT_FILTERS, in this order; links are
# kept out of them). An unregistered channel has none (measured on 3.86).
_DEFAULT_FILTERS = (
    (re.compile(r"`(.+?)`"), r"<code>\1</code>"),
    (re.compile(r"\*(.+?)\*"), r"<strong>\1</strong>"),
    (re.compile(r"_(.+?)_"), r"<em>\1</em>"),
    (re.compile(r"~~(.+?)~~"), r"<s>\1</s>"),
    (re.compile(r"\[sp\](.*?)\[/sp\]", re.IGNORECASE), r'<span class="spoiler">\1</span>'),
)
_LINK_PLACEHOLDER = "\ueeee"
# sanitize-html, CyTube's last pass, writes text with only & < > escaped: the quotes, apostrophes
# and parentheses sanitizeText escaped come back as themselves ('"' stays &quot; in an attribute).
_TEXT_ENTITIES = {"&quot;": '"', "&#39;": "'", "&#40;": "(", "&#41;": ")"}
_ATTRIBUTE_ENTITIES = {"&#39;": "'", "&#40;": "(", "&#41;": ")"}
_SHOUT = {"addClass": "shout", "addClassToNameAndTimestamp": True, "forceShowName": True}
# chat commands whose text is broadcast with a meta (chat.js handleCmdMe/Sp/Say)
CHAT_META_COMMANDS: dict[str, dict[str, Any]] = {
    "me": {"addClass": "action", "action": True},
    "sp": {"addClass": "spoiler"},
    "say": _SHOUT,
    "shout": _SHOUT,
    "rcv": _SHOUT,
}


def _unescape(text: str, entities: dict[str, str]) -> str:
    for entity, char in entities.items():
        text = text.replace(entity, char)
    return text


def render_chat(text: str, *, filtered: bool) -> str:
    """A chat line's ``msg`` as CyTube 3.86 sends it: sanitizeText, the default filters outside links
    (``filtered``: a registered channel), links as ``<a>``, then sanitize-html's re-serialising."""
    escaped = names.sanitize_text(text)
    links = [match.group(0) for match in _LINK.finditer(escaped)]
    body = _LINK.sub(_LINK_PLACEHOLDER, escaped)
    if filtered:
        for pattern, replacement in _DEFAULT_FILTERS:
            body = pattern.sub(replacement, body)
    body = _unescape(body, _TEXT_ENTITIES)
    found = iter(links)

    def anchor(_: re.Match[str]) -> str:
        link = next(found, "")
        href, shown = _unescape(link, _ATTRIBUTE_ENTITIES), _unescape(link, _TEXT_ENTITIES)
        return f'<a href="{href}" target="_blank" rel="noopener noreferrer">{shown}</a>' if link else ""

    return re.sub(_LINK_PLACEHOLDER, anchor, body)


def chat_payload(record: ChatRecord, *, filtered: bool = False, commands: bool = True) -> dict[str, Any]:
    """The ``chatMsg``/``pm`` payload of a recorded line: ``/me``, ``/sp`` and ``/say`` (chat only,
    ``commands``) lose their command word and carry their meta; a line starting with ``>`` is
    greentext (measured on 3.86: ``"/me"`` alone is an empty action)."""
    text = record.text
    meta: dict[str, Any] = {}
    word = text[1:].split(" ", 1)[0] if commands and text.startswith("/") else ""
    if word in CHAT_META_COMMANDS:
        meta = dict(CHAT_META_COMMANDS[word])
        text = text[len(word) + 2:]
    elif text.startswith(">"):
        meta = {"addClass": "greentext"}
    return {
        "username": record.username,
        "msg": render_chat(text, filtered=filtered),
        "time": record.time_ms,
        "meta": meta,
    }


def client_ip(environ: dict[str, Any]) -> str:
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


class Sessions:
    def __init__(self, server: FakeCytubeServer) -> None:
        self.server = server
        self.socks: dict[str, Sock] = {}

    def register(self, sio: socketio.AsyncServer) -> None:
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        handlers: dict[str, Callable[[str, Any], Awaitable[Any]]] = {
            "joinChannel": self.on_join,
            "channelPassword": self.on_channel_password,
            "login": self.on_login,
            "chatMsg": self.on_chat,
            "pm": self.on_pm,
        }
        for event in CHANNEL_EVENTS:
            handlers[event] = self._channel_event(event)
        for event, handler in handlers.items():
            sio.on(event, self._recorded(event, handler))
        sio.on("*", self.on_other)

    def _channel_event(self, event: str) -> Callable[[str, Any], Awaitable[Any]]:
        async def run(sid: str, data: Any = None) -> Any:
            await self.server.delay()
            sock = self.socks.get(sid)
            if sock is None or sock.member is None or sock.channel is None:
                return None  # not in a channel: CyTube has not bound the handler, nothing happens
            return await self.server.channel(sock.channel).act(sock.member, event, data)

        return run

    def _recorded(
        self, event: str, handler: Callable[[str, Any], Awaitable[Any]]
    ) -> Callable[[str, Any], Awaitable[Any]]:
        async def run(sid: str, data: Any = None) -> Any:
            self._record(event, sid, data)
            return await handler(sid, data)

        return run

    async def on_other(self, event: str, sid: str, data: Any = None) -> None:
        self._record(event, sid, data)  # an event this server does not handle: dropped silently

    def _record(self, event: str, sid: str, data: Any) -> None:
        sock = self.socks.get(sid)
        if sock is None:
            return
        room = sock.channel
        asked = data.get("name") if event == "joinChannel" and isinstance(data, dict) else None
        if room is None and isinstance(asked, str):
            room = asked.lower()  # the room this frame asks for
        self.server.actions_log.append(ActionRecord(event, data, sock.ip, room, sock.name, now_ms()))

    # connection ------------------------------------------------------------------------------------
    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        server = self.server
        ip = client_ip(environ)
        if not server.gate.admit(ip):
            server.refused_connects += 1  # a refused attempt costs no token (CyTube's bucket)
            raise socketio.exceptions.ConnectionRefusedError(RATE_LIMIT_EXCEEDED)
        server.connections_total += 1
        self.socks[sid] = Sock(sid, ip, chat=server.gate.chat_limiter())
        over_cap = not server.gate.opened(ip)
        # Anything sent from inside this handler would precede Socket.IO's CONNECT packet (and a
        # disconnect here would be lost): greet, or kick, once the connection is established.
        server.spawn(self._greet(sid, over_cap=over_cap), "fake_cytube.greet")

    async def _greet(self, sid: str, *, over_cap: bool) -> None:
        for _ in range(1000):  # bounded: CONNECT is sent right after the connect handler returns
            if self.server.sio.manager.is_connected(sid, "/"):
                break
            await asyncio.sleep(0.001)
        else:
            return
        if over_cap:
            # CyTube 3.86 accepts the socket (its token is spent) and kicks it before it makes a
            # user of it: the kick is all it gets, no `rank -1` (ioserver.js checkIPLimit; measured).
            await self.server.kick_sid(sid, TOO_MANY_CONNECTIONS)
            return
        await self.server.sio.emit("rank", -1, to=sid)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        sock = self.socks.pop(sid, None)
        if sock is None:
            return
        self.server.gate.closed(sock.ip)
        if sock.member is not None and sock.channel is not None:
            await self.server.channel(sock.channel).leave(sock.member)

    # join ------------------------------------------------------------------------------------------
    async def on_join(self, sid: str, data: Any = None) -> None:
        server = self.server
        await server.delay()
        sock = self.socks.get(sid)
        if sock is None or sock.channel is not None:
            return  # one join per connection
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            return  # CyTube ignores a malformed joinChannel
        if not names.valid_channel_name(name) and server.limits.enabled:
            await server.sio.emit("errorMsg", {"msg": names.INVALID_CHANNEL_MSG}, to=sid)
            await server.kick_sid(sid, names.INVALID_CHANNEL_KICK)
            return
        sock.channel = name.lower()
        channel = server.channel(sock.channel)
        probe = Member(key=sid, ip=sock.ip, sid=sid, name=sock.name)
        if channel.banned(probe):
            await server.kick_sid(sid, BANNED_ON_JOIN)
            return
        password = channel.options.get("password", False)
        given = data.get("pw")
        if password is not False and given != password:
            # accesscontrol.js: a moderator who logged in first walks in; everyone else is asked
            # (needPassword true when joinChannel carried a wrong `pw`) and waits for channelPassword,
            # or for a login that turns out to be a moderator's.
            if sock.name is not None and self._effective_rank(sock, channel) >= 2:
                await self._join(sock, channel)  # the join runs first, then the cancel (measured)
                await server.sio.emit("cancelNeedPassword", to=sid)
                return
            await server.sio.emit("needPassword", given is not None, to=sid)
            return
        await self._join(sock, channel)

    @staticmethod
    def _effective_rank(sock: Sock, channel: FakeChannel) -> float:
        probe = Member(key=sock.sid, ip=sock.ip, name=sock.name, registered=sock.account is not None,
                       global_rank=sock.global_rank)
        return channel.stored_rank(probe)

    async def on_channel_password(self, sid: str, data: Any = None) -> None:
        sock = self.socks.get(sid)
        if sock is None or sock.channel is None or sock.member is not None:
            return
        if data != self.server.channel(sock.channel).options.get("password", False):
            await self.server.sio.emit("needPassword", True, to=sid)
            return
        await self.server.sio.emit("cancelNeedPassword", to=sid)
        await self._join(sock, self.server.channel(sock.channel))

    async def _join(self, sock: Sock, channel: FakeChannel) -> None:
        member = Member(
            key=sock.sid,
            ip=sock.ip,
            sid=sock.sid,
            name=sock.name,
            registered=sock.account is not None,
            global_rank=sock.global_rank,
        )
        member.rank = channel.stored_rank(member) if sock.name is not None else -1.0
        sock.member = member
        await self.server.sio.enter_room(sock.sid, channel.name)
        backlog = [
            chat_payload(r, filtered=channel.registered)
            for r in self.server.chat_lines(channel.name)[-BACKLOG_LINES:]
        ]
        if sock.name is not None:
            await self._kick_duplicates(channel, sock)
        await channel.join(member, backlog)
        if sock.name is not None:  # logged in before joining (order C): no addUser for yourself
            self.server.note_session(channel.name, sock.name)
            for other in channel.members:
                if other is not member:
                    await channel.send(other, "addUser", channel.user_entry(member, other))

    # login -----------------------------------------------------------------------------------------
    async def on_login(self, sid: str, data: Any = None) -> None:
        server = self.server
        await server.delay()
        sock = self.socks.get(sid)
        if sock is None or sock.name is not None:
            return
        if not isinstance(data, dict):
            await server.sio.emit("errorMsg", {"msg": "Invalid login frame"}, to=sid)
            return
        name, password = data.get("name"), data.get("pw") or ""
        if not isinstance(name, str):
            return
        if not isinstance(password, str):
            password = ""
        registered = bool(password)
        error = self._login_error(sock, name, password)
        if error is not None:
            server.login_refusal_log.append(
                LoginRefusal(error, sock.ip, sock.channel, name, not registered, now_ms())
            )
            await server.sio.emit("login", {"success": False, "error": error}, to=sid)
            return
        if registered:
            name = server.accounts[name.lower()][0]
            sock.account = name.lower()
            sock.global_rank = server.global_ranks.get(sock.account, 1.0)
        else:
            server.guest_login_log.append(server.gate.guest_logged_in(sock.ip))
            sock.global_rank = 0.0
        sock.name = name
        member = sock.member
        if member is not None:
            member.name, member.registered, member.global_rank = name, registered, sock.global_rank
            member.rank = sock.global_rank
        await server.sio.emit("rank", sock.global_rank, to=sid)
        if member is not None and sock.global_rank >= ADMIN_RANK and sock.channel is not None:
            await server.channel(sock.channel).send_userlist(member)  # the rank crossed 2
        reply: dict[str, Any] = {"success": True, "name": name}
        if not registered:
            reply["guest"] = True
        await server.sio.emit("login", reply, to=sid)
        if member is None and sock.channel is not None and registered:
            # Still at the channel password prompt: the channel-rank lookup runs all the same (`rank`
            # again, measured on 3.86), and a moderator is let in (accesscontrol.js, option 1).
            waiting = server.channel(sock.channel)
            rank = self._effective_rank(sock, waiting)
            await server.sio.emit("rank", rank, to=sid)
            if rank >= 2:
                await self._join(sock, waiting)
                await server.sio.emit("cancelNeedPassword", to=sid)
            return
        if member is None or sock.channel is None:
            return
        channel = server.channel(sock.channel)
        await self._kick_duplicates(channel, sock)
        server.note_session(channel.name, name)
        await channel.logged_in(member)
        if channel.name_banned(member):
            # CyTube checks a name ban only once the login is done (kickban.js onUserPostJoin waits
            # for U_LOGGED_IN): everyone saw the addUser and setUserRank, then the kick, the
            # userLeave and a whisper to moderators (measured on 3.86).
            await server.kick_sid(sid, BANNED_ON_JOIN)
            await channel.moderation.mod_whisper(f"{name} was kicked (name is banned)", 2)

    def _login_error(self, sock: Sock, name: str, password: str) -> str | None:
        server = self.server
        if password:
            account = server.accounts.get(name.lower())
            if account is None:
                return names.NO_SUCH_USER
            if password != account[1]:
                return names.BAD_PASSWORD
            return None
        if not server.limits.enabled:
            return self._name_in_use(sock, name)
        # CyTube checks the guest window first (user.js guestLogin), then the name.
        if not server.gate.guest_window_open(sock.ip):
            return names.GUEST_RESTRICTED.format(window=server.limits.guest_window_text)
        if not names.valid_user_name(name):
            return names.INVALID_USERNAME
        if name.lower() in names.RESERVED_NAMES:
            return names.NAME_RESERVED
        if name.lower() in server.accounts:
            return names.NAME_REGISTERED
        return self._name_in_use(sock, name)

    def _name_in_use(self, sock: Sock, name: str) -> str | None:
        if sock.member is None or sock.channel is None:
            return None
        return names.NAME_IN_USE if self.server.channel(sock.channel).find(name) is not None else None

    async def _kick_duplicates(self, channel: FakeChannel, sock: Sock) -> None:
        """The same name logged in again in this channel: the OLDER socket is kicked."""
        for other in list(channel.members):
            if (
                other.sid != sock.sid
                and other.name is not None
                and sock.name is not None
                and other.lower == sock.name.lower()
            ):
                await self.server.kick_member(other, DUPLICATE_LOGIN)

    # chat ------------------------------------------------------------------------------------------
    async def on_chat(self, sid: str, data: Any = None) -> None:
        server = self.server
        await server.delay()
        sock = self.socks.get(sid)
        if sock is None or sock.channel is None:
            return  # no channel joined: CyTube has no chatMsg handler yet
        if await self._typecheck_failed(sid, "chatMsg", data):
            return
        member = sock.member
        if member is None or member.name is None:
            return  # chat before login is dropped silently, as on the real server
        msg = data.get("msg")
        if not isinstance(msg, str) or not msg.strip():
            return
        if sock.chat is not None and not sock.chat.allow():
            await server.sio.emit("cooldown", server.limits.chat_cooldown_ms, to=sid)
            return
        await self.member_chat(server.channel(sock.channel), member, msg, skip_echo=server.echoes_dropped)

    async def member_chat(
        self, channel: FakeChannel, member: Member, msg: str, *, skip_echo: bool = False
    ) -> None:
        """A chat line from a member (socket or simulated): commands, mute, AFK, then the broadcast."""
        # CyTube cuts the line and turns control characters into spaces BEFORE the command check,
        # which looks at the first character only (no trimming): "/kick\tbob" kicks, " /kick" is text.
        msg = msg[:CHAT_LIMIT_CHARS]
        if not channel.options.get("allow_ascii_control"):
            msg = _CONTROL.sub(" ", msg)
        if msg.startswith("/") and await channel.moderation.command(member, msg):
            return  # a recognised command is never broadcast as chat
        emoted = msg[4:] if msg.startswith("/me ") else ""
        if emoted.startswith("/") and await channel.moderation.command(member, emoted):
            return  # CyTube's /me runs its text through the command check again: "/me /kick x" kicks
        if not channel.may(member, "chat"):
            return
        word = msg[1:].split(" ", 1)[0] if msg.startswith("/") else ""
        if word in {"say", "shout", "rcv"} and member.rank < 1.5:
            return  # chat.js handleCmdSay: below rank 1.5, silence
        if member.muted and not member.smuted:
            await channel.send(member, "noflood", {"action": "chat", "msg": MUTED_NOTICE})
            return
        if member.afk:
            await channel.moderation.set_afk(member, False)
        if member.smuted:
            record = ChatRecord(channel.name, member.name or "", msg[:CHAT_LIMIT_CHARS], now_ms())
            payload = chat_payload(record, filtered=channel.registered)
            await channel.send(member, "chatMsg", payload)
            need = channel.permissions.get("mute")
            shadow = {**payload, "meta": {**payload["meta"], "shadow": True}}
            await channel.broadcast(
                "chatMsg", shadow, where=lambda m: m is not member and need is not None and m.rank >= need
            )
            return
        await self.server.accept_chat(
            channel.name, member.name or "", msg, skip_sid=member.sid if skip_echo else None
        )

    async def _typecheck_failed(self, sid: str, event: str, data: Any) -> bool:
        """CyTube typechecks chatMsg and pm once the socket is in a channel: a bad payload gets
        ``errorMsg`` (typecheck.py)."""
        error = typecheck.check(event, data)
        if error is not None:
            await self.server.sio.emit("errorMsg", {"msg": error}, to=sid)
        return error is not None

    async def on_pm(self, sid: str, data: Any = None) -> None:
        server = self.server
        await server.delay()
        sock = self.socks.get(sid)
        if sock is None or sock.channel is None:
            return
        if await self._typecheck_failed(sid, "pm", data):
            return
        if sock.name is None:
            await server.sio.emit("errorMsg", {"msg": "You must be signed in to send PMs"}, to=sid)
            return
        msg, to = data["msg"], data["to"]
        if not msg.strip():
            return
        channel = server.channel(sock.channel)
        target = channel.find(to)
        if target is None:
            await server.sio.emit("errorMsg", {"msg": f"{to} is not on this channel"}, to=sid)
            return
        if sock.chat is not None and not sock.chat.allow():
            await server.sio.emit("cooldown", server.limits.chat_cooldown_ms, to=sid)
            return
        record = ChatRecord(sock.channel, sock.name, msg[:CHAT_LIMIT_CHARS], now_ms(), to=target.name)
        server.record_chat(record)
        payload = {**chat_payload(record, filtered=channel.registered, commands=False), "to": target.name}
        await server.sio.emit("pm", payload, to=sid)
        await channel.send(target, "pm", payload)
