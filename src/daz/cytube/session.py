"""One CyTube session over one connection: join → login, verified, then the inbound event stream.

The server forgets a client on every reconnect, so a ``Session`` is made per connection. ``pump``
reads the transport in arrival order and turns each frame into a typed event on the bus;
``establish`` sends ``joinChannel`` then ``login`` and waits for each reply with its own timeout.
The session is READY only when the login reply says ``success: true``.

Backlog rule: the server replays up to 15 old chat lines as part of the join sequence, before
``userlist``. Lines that arrive before the join completes are marked ``backlog`` (by position in
the sequence, which needs no clock agreement with the server); the bot's own lines are ``own``.
"""

from __future__ import annotations

import asyncio
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from daz.aio import wait_for
from daz.clock import Clock
from daz.config import CytubeConfig
from daz.cytube import protocol as p
from daz.cytube.ban_wire import Banlist, BanRemoved
from daz.cytube.channel_wire import ChannelEvent
from daz.cytube.outbox import OutboundLine
from daz.errors import (
    ChannelPasswordRefused,
    Kicked,
    LoginFailed,
    SessionTimeout,
    TransportError,
)
from daz.metrics import DazMetrics
from daz.transport.base import Closed, Transport, WireEvent, WireMalformed

log = structlog.get_logger("daz.cytube")
# Typed events published under their wire name (cytube.playlist, cytube.banlist, ...).
TYPED_EVENTS = (*typing.get_args(ChannelEvent), Banlist, BanRemoved)

Publish = Callable[[str, dict[str, Any]], object]
FrameWatcher = Callable[[str, Any], None]
Observe = Callable[[object, float], None]
T = typing.TypeVar("T")


@dataclass(frozen=True, slots=True)
class Echo:
    time_ms: int


@dataclass(frozen=True, slots=True)
class CooledDown:
    milliseconds: int


SendOutcome = Echo | CooledDown


@dataclass(frozen=True, slots=True)
class Credentials:
    name: str
    password: str | None = None
    channel_password: str | None = None


class Session:
    def __init__(
        self,
        *,
        room: str,
        channel: str,
        credentials: Credentials,
        transport: Transport,
        clock: Clock,
        config: CytubeConfig,
        publish: Publish,
        metrics: DazMetrics,
        observe: Observe | None = None,
    ) -> None:
        self.room = room
        self.channel = channel
        self.credentials = credentials
        self.transport = transport
        self.clock = clock
        self.config = config
        self.metrics = metrics
        self._publish = publish
        # The room's channel replica sees every parsed frame first, in arrival order.
        self._observe = observe
        self.name = credentials.name
        self.joined = False
        self.logged_in = False
        self.backlog: list[p.ChatMessage] = []
        self._backlog_claimed: set[int] = set()  # backlog positions that already confirmed a line
        self.kick_reason: str | None = None
        self.last_media_update_at: float | None = None
        self._join_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._login_done: asyncio.Future[p.LoginResult] = asyncio.get_running_loop().create_future()
        self._expect: tuple[OutboundLine, str, asyncio.Future[SendOutcome]] | None = None
        # Logged in at the channel-password prompt: CyTube lets a moderator (effective rank >= 2) in
        # without the password once its login is done (accesscontrol.js), so an account with no
        # channel password configured tries that; the rank that follows the login decides.
        self._login_sent = False
        self._login_at_prompt = False
        self._frame_watcher: FrameWatcher | None = None
        # Pending queries (``ask``): each looks at every parsed frame for its answer. A list, not
        # the one watcher slot: a plugin's query may run while an action is in flight.
        self._askers: list[tuple[Callable[[p.ServerEvent], None], asyncio.Future[Any]]] = []
        # prometheus_client's labels() costs more than the rest of a chat line's parsing: cache the
        # children (bounded: metric_event_label maps unknown names to "other").
        self._received: dict[str, Any] = {}

    # establishing ----------------------------------------------------------------------------
    async def establish(self) -> None:
        """Join, then log in; raise a ``SessionError`` (or the transport's error) unless it worked."""
        await self.transport.emit("joinChannel", p.join_payload(self.channel))
        await self._await(self._join_done, self.config.join_timeout_seconds, "join")
        creds = self.credentials
        if not self._login_sent:  # (already sent at a channel-password prompt)
            self._login_sent = True
            await self.transport.emit("login", p.login_payload(creds.name, creds.password))
        result = await self._await(self._login_done, self.config.login_timeout_seconds, "login")
        if not result.success:
            reason = result.error or "login refused"
            raise LoginFailed(
                f"room {self.room}: login as {creds.name} failed: {reason}", reason=reason, retryable=True
            )
        self.name = result.name or creds.name
        self.logged_in = True

    async def _await(self, fut: asyncio.Future[Any], timeout: float, step: str) -> Any:
        try:
            return await wait_for(self.clock, timeout, lambda: asyncio.shield(fut), label=f"session.{step}")
        except TimeoutError as exc:
            raise SessionTimeout(f"room {self.room}: no {step} reply within {timeout}s") from exc

    # sending ---------------------------------------------------------------------------------
    def expect(self, line: OutboundLine) -> asyncio.Future[SendOutcome]:
        """Arm the echo matcher for ``line`` (one line in flight at a time)."""
        fut: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._expect = (line, _echo_key_of(line), fut)
        return fut

    def disarm(self) -> None:
        self._expect = None

    def watch_frames(self, watcher: FrameWatcher | None) -> None:
        """Show every inbound frame (name, raw payload) to ``watcher`` before it is handled: the
        action in flight looks for its confirmation or refusal there. None stops watching."""
        self._frame_watcher = watcher

    async def emit_action(self, event: str, payload: Any) -> None:
        await self.transport.emit(event, payload)

    async def ask(self, event: str, payload: Any, answer: Callable[[p.ServerEvent], T | None], *,
                  timeout: float, label: str) -> T:
        """Send ``event`` and return the first parsed frame ``answer`` accepts (not None) after it.
        ``TimeoutError`` after ``timeout`` seconds of silence; the transport's error if the
        connection ends first. Only frames arriving after the call count: a stale answer is never taken."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def check(parsed: p.ServerEvent) -> None:
            if not fut.done():
                found = answer(parsed)
                if found is not None:
                    fut.set_result(found)

        entry = (check, fut)
        self._askers.append(entry)
        try:
            await self.transport.emit(event, payload)
            return await wait_for(self.clock, timeout, lambda: asyncio.shield(fut), label=label)
        finally:
            self._askers.remove(entry)
            if not fut.done():
                fut.cancel()

    async def emit_line(self, line: OutboundLine) -> None:
        if line.kind == "pm" and line.to is not None:
            await self.transport.emit("pm", p.pm_payload(line.to, line.text))
        else:
            await self.transport.emit("chatMsg", p.chat_payload(line.text))

    def backlog_confirms(
        self, line: OutboundLine, *, after_ms: int, name: str | None = None
    ) -> p.ChatMessage | None:
        """The replayed own line proving the server already has ``line`` (sent after ``after_ms``).

        ``name``: the name the line was sent under, when it may differ from this session's (a guest
        that came back under a fresh name)."""
        key = _echo_key_of(line)
        names = {self.name.lower(), (name or self.name).lower()}
        for index in range(len(self.backlog) - 1, -1, -1):
            msg = self.backlog[index]
            if (index not in self._backlog_claimed and msg.username.lower() in names
                    and msg.time_ms > after_ms and p.echo_key(msg.raw) == key):
                # One replayed line proves one sent line: two in-doubt lines with the same text
                # (bounded by their creation time, not by each other's echo) must not share it.
                self._backlog_claimed.add(index)
                return msg
        return None

    # inbound ---------------------------------------------------------------------------------
    async def pump(self) -> TransportError:
        """Handle inbound frames until the connection ends; returns why it ended."""
        while True:
            item = await self.transport.receive()
            if isinstance(item, Closed):
                self._close(item.error)
                return item.error
            if isinstance(item, WireMalformed):
                self._malformed(item.event, item.size, item.detail)
                continue
            await self._handle(item)

    def _close(self, error: TransportError) -> None:
        if isinstance(error, Kicked) and self.kick_reason is None:
            self.kick_reason = error.reason
        pending: list[asyncio.Future[Any]] = [self._join_done, self._login_done]
        if self._expect is not None:
            pending.append(self._expect[2])
        pending.extend(fut for _, fut in self._askers)
        for fut in pending:
            if fut.done():
                continue
            fut.set_exception(error)
            # Only the step being awaited (if any) re-raises this; the steps not reached yet never
            # will, and the session's end is already reported by pump()'s return. Marking the copy
            # seen keeps asyncio from logging it as "Future exception was never retrieved".
            fut.exception()

    def _malformed(self, event: str, size: int, detail: str) -> None:
        self.metrics.protocol_malformed.labels(room=self.room).inc()
        log.warning("protocol.malformed", room=self.room, wire_event=event, size=size, detail=detail)
        self._publish("protocol.malformed", {"room": self.room, "event": event, "size": size})

    def _is_self(self, username: str) -> bool:
        return username.lower() == self.name.lower()

    async def _handle(self, item: WireEvent) -> None:
        counter = self._received.get(item.name)
        if counter is None:
            label = p.metric_event_label(item.name)
            counter = self.metrics.messages_received.labels(room=self.room, event=label)
            if label != "other":
                self._received[item.name] = counter
        counter.inc()
        event = p.parse(item.name, item.data)
        if self._observe is not None and not isinstance(event, p.Malformed):
            # The replica first: whoever reacts to this frame (the action watcher, the bus
            # subscribers) already finds its effect in the replica.
            self._observe(event, self.clock.monotonic())
        self._show(item, event)
        if isinstance(event, p.Malformed):
            self._malformed(event.event, event.size, event.detail)
            return
        room = self.room
        if isinstance(event, p.ChatMessage | p.PrivateMessage):
            self._chat(event)
        elif isinstance(event, p.UserList):
            if not self.joined:
                self.joined = True
                if not self._join_done.done():
                    self._join_done.set_result(None)
            self._publish("cytube.userlist", {"room": room, "event": event})
        elif isinstance(event, p.UserJoined):
            self._publish("cytube.user.joined", {"room": room, "event": event})
        elif isinstance(event, p.UserLeft):
            self._publish("cytube.user.left", {"room": room, "event": event})
        elif isinstance(event, p.MediaChanged | p.MediaUpdate):
            self._media(event)
        elif isinstance(event, p.LoginResult):
            self._login_result(event)
        elif isinstance(event, p.Cooldown):
            if self._expect is not None and not self._expect[2].done():
                self._expect[2].set_result(CooledDown(event.milliseconds))
        elif isinstance(event, p.KickNotice):
            self.kick_reason = event.reason
        elif isinstance(event, p.NeedPassword):
            await self._need_password(event)
        elif isinstance(event, p.ErrorMessage):
            log.warning("cytube.error_msg", room=room, message=event.message[:200])
            self._publish("cytube.error", {"room": room, "event": event})
        elif isinstance(event, p.GenericEvent):
            self._publish(f"cytube.{p.bus_segment(event.name)}", {"room": room, "event": event})
        elif isinstance(event, TYPED_EVENTS):
            self._publish(f"cytube.{p.bus_segment(item.name)}", {"room": room, "event": event})
        elif isinstance(event, p.UserCount):
            self._publish("cytube.usercount", {"room": room, "event": event})
        elif isinstance(event, p.Rank):
            self._rank_at_prompt(event)
            self._publish("cytube.rank", {"room": room, "event": event})

    def _show(self, item: WireEvent, event: p.ServerEvent) -> None:
        """The frame to whoever waits for an answer: the action in flight (raw), the queries (parsed)."""
        if self._frame_watcher is not None:
            self._frame_watcher(item.name, item.data)
        # No copy per frame: an answered query leaves the list only when its ``ask`` resumes
        # (set_result schedules that, never runs it here).
        for check, _ in self._askers:
            check(event)

    def _chat(self, event: p.ChatMessage | p.PrivateMessage) -> None:
        own = self._is_self(event.username)
        if isinstance(event, p.PrivateMessage):
            if own:
                self._match_echo(event.raw, event.time_ms, to=event.to)
            self._publish("cytube.pm", {"room": self.room, "event": event, "backlog": False, "own": own})
            return
        backlog = not self.joined
        if backlog:
            self.backlog.append(event)
        elif own:
            self._match_echo(event.raw, event.time_ms, to=None)
        self._publish("cytube.chat", {"room": self.room, "event": event, "backlog": backlog, "own": own})

    def _media(self, event: p.MediaChanged | p.MediaUpdate) -> None:
        # Whether media plays is the channel replica's to say (it also sees the end of the
        # playlist, which comes as delete + setPlaylistMeta with no media event at all).
        self.last_media_update_at = self.clock.monotonic()
        if isinstance(event, p.MediaChanged):
            self._publish("cytube.media.changed", {"room": self.room, "event": event})
        else:
            self._publish("cytube.media.update", {"room": self.room, "event": event})

    def _login_result(self, event: p.LoginResult) -> None:
        if not self._login_done.done():
            self._login_done.set_result(event)
        if self._login_at_prompt and not event.success and not self._join_done.done():
            self._join_done.set_result(None)  # establish reports the refused login as usual

    def _rank_at_prompt(self, event: p.Rank) -> None:
        """The rank that follows a login made at the password prompt: below 2 the prompt stays."""
        if not self._login_at_prompt or not self._login_done.done() or self._join_done.done():
            return
        if event.rank < 2:
            why = (f"channel needs a password; none configured (the account's rank here is "
                   f"{event.rank:g}; only moderators, rank 2 and up, enter without it)")
            self._join_done.set_exception(ChannelPasswordRefused(f"room {self.room}: {why}"))

    async def _need_password(self, event: p.NeedPassword) -> None:
        creds = self.credentials
        password = creds.channel_password
        if password is None and not event.wrong and creds.password is not None and not self._login_sent:
            # No channel password, but an account: CyTube lets a moderator in once it has logged in
            # (measured on 3.86: rank, login, rank 2, the join burst, cancelNeedPassword).
            self._login_sent = self._login_at_prompt = True
            await self.transport.emit("login", p.login_payload(creds.name, creds.password))
            return
        if event.wrong or password is None:
            why = "wrong channel password" if event.wrong else "channel needs a password; none configured"
            if not self._join_done.done():
                self._join_done.set_exception(ChannelPasswordRefused(f"room {self.room}: {why}"))
            return
        await self.transport.emit("channelPassword", password)

    def _match_echo(self, raw: str, time_ms: int, *, to: str | None) -> None:
        if self._expect is None:
            return
        line, key, fut = self._expect
        if fut.done() or p.echo_key(raw) != key:
            return
        if line.kind == "pm" and (to is None or line.to is None or to.lower() != line.to.lower()):
            return
        fut.set_result(Echo(time_ms))


def _echo_key_of(line: OutboundLine) -> str:
    # A PM is never a command (CyTube sends its text as is); a chat line may be a /me emote.
    return p.sent_key(line.text) if line.kind == "pm" else p.chat_key(line.text)
