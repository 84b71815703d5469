"""``RoomSupervisor``: keeps one room joined, forever, with the seed's backoff and honest liveness.

One supervisor per room; it owns the room's connection, session and outbox sender. Every state
change goes through the pure transition table in ``states.py`` and is published as
``room.state_changed``, logged and set on the ``daz_room_state`` gauge. All waits race against
``stopping`` (and a reconnect request), so stop interrupts any wait at once; no lock exists to be
held across a sleep.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import structlog

from daz.aio import race, wait_for
from daz.clock import Clock
from daz.config import CytubeConfig, RoomConfig
from daz.cytube.action_flight import ActionSender, ActionTimings, Settled
from daz.cytube.channel import ChannelState
from daz.cytube.channel.replica import ChannelReplica
from daz.cytube.discovery import Endpoint
from daz.cytube.outbox import OutboundLine, Outbox
from daz.cytube.session import CooledDown, Credentials, Echo, Session
from daz.cytube.states import (
    Liveness,
    RoomState,
    check_transition,
    is_degraded,
    is_fatal_kick,
    is_stable,
    liveness,
    probe_delay,
    reconnect_delay,
    record_flap,
)
from daz.errors import (
    ConnectFailed,
    DazError,
    Kicked,
    LoginFailed,
    RateLimited,
    SessionTimeout,
    TransportError,
)
from daz.events.bus import EventBus
from daz.events.state_change import ROOM, StateChange, StateChangeHook
from daz.metrics import DazMetrics
from daz.transport.base import Transport, TransportFactory

log = structlog.get_logger("daz.cytube")

MAX_ECHO_TIMEOUTS = 3
# Without a confirmed echo to compare server times with, an in-doubt line is matched against
# replayed lines up to this long before our send (server and bot clocks may disagree a little).
CLOCK_SKEW_ALLOWANCE_MS = 5_000
# Failures after which the server may simply be unreachable, so the cheap probe can cut the wait.
_PROBE_REASONS = frozenset({"discovery", "connect_failed", "disconnected", "no_frames", "media_timeout"})


@dataclass(frozen=True, slots=True)
class RoomStatus:
    """Read-only view of one room for health checks and the status page."""

    name: str
    state: RoomState
    state_since: float
    attempt: int
    next_delay: float | None
    last_frame_at: float | None
    ping_interval: float | None
    ping_timeout: float | None
    media_playing: bool
    last_media_update_at: float | None
    flaps_in_window: int
    degraded: bool
    kicked_reason: str | None
    connected_since: float | None
    reconnects: int
    outbox_depth: int


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    detail: str
    rate_limited: bool = False
    kicked: str | None = None
    immediate: bool = False


class RoomSupervisor:
    def __init__(
        self,
        *,
        room: RoomConfig,
        config: CytubeConfig,
        bus: EventBus,
        metrics: DazMetrics,
        clock: Clock,
        rng: random.Random,
        transport_factory: TransportFactory,
        endpoint: Endpoint,
        outbox: Outbox,
        guest_name: str | None = None,
        probe_rng: random.Random | None = None,
        on_action_settled: Settled | None = None,
    ) -> None:
        self.room = room
        self.name = room.channel
        self.config = config
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self.rng = rng
        self.probe_rng = probe_rng if probe_rng is not None else random.Random(rng.random())
        self.transport_factory = transport_factory
        self.endpoint = endpoint
        self.outbox = outbox
        self.actions = ActionSender(
            self.name, outbox, clock,
            ActionTimings(config.action_timeout_seconds, config.action_silent_retries),
            replica=self.live_channel, on_settled=on_action_settled, metrics=metrics,
            publish=lambda name, data, cid: bus.publish(name, data, correlation_id=cid, source="cytube"),
        )
        self.guest_name = guest_name or f"daz-{self.probe_rng.getrandbits(24):06x}"
        self.state = RoomState.DISCONNECTED
        self.state_since = clock.monotonic()
        self.attempt = 0
        self.next_delay: float | None = None
        self.reconnects = 0
        self.kicked_reason: str | None = None
        self.ready_since: float | None = None
        self.lost_at: float | None = clock.monotonic()
        self._flaps: tuple[float, ...] = ()
        self._degraded = False
        self._session: Session | None = None
        self._transport: Transport | None = None
        # The channel replica outlives connections: resync diffs against it after a reconnect.
        self.channel = ChannelReplica(self.name, lambda name, data: bus.publish(name, data, source="cytube"))
        self._wake = asyncio.Event()
        self._wake_reason = "requested"
        self._stopping: asyncio.Event | None = None
        self._last_delay: float | None = None
        self._announce = StateChangeHook(bus=bus, metrics=metrics)
        self._announce.initial(ROOM, self.name, self.state.value)

    # public ----------------------------------------------------------------------------------
    def status(self) -> RoomStatus:
        now = self.clock.monotonic()
        session, transport = self._session, self._transport
        window = self.config.flap_window_seconds
        return RoomStatus(
            name=self.name,
            state=self.state,
            state_since=self.state_since,
            attempt=self.attempt,
            next_delay=self.next_delay,
            last_frame_at=transport.last_frame_at if transport is not None else None,
            ping_interval=transport.ping_interval if transport is not None else None,
            ping_timeout=transport.ping_timeout if transport is not None else None,
            media_playing=self.channel.playing,
            last_media_update_at=session.last_media_update_at if session is not None else None,
            flaps_in_window=sum(1 for t in self._flaps if now - t <= window),
            degraded=is_degraded(self._flaps, now, window, self.config.flap_threshold),
            kicked_reason=self.kicked_reason,
            connected_since=self.ready_since if self.state is RoomState.READY else None,
            reconnects=self.reconnects,
            outbox_depth=self.outbox.depth,
        )

    def live_channel(self) -> ChannelState | None:
        """The replica while it follows the server (complete for this connection), else None: what
        actions are decided against (an in-doubt action must see the RESYNCED replica)."""
        return self.channel.snapshot if self.channel.live else None

    def request_reconnect(self, reason: str) -> None:
        """Tear the connection down (or cut a wait short) and reconnect now; also un-kicks a room."""
        self._wake_reason = reason
        self._wake.set()

    def reset_after_crash(self) -> None:
        """Return to DISCONNECTED after an unexpected error so ``run`` can start over."""
        self.state = RoomState.DISCONNECTED
        self.state_since = self.clock.monotonic()
        self._session = None
        self._transport = None

    async def run(self, stopping: asyncio.Event) -> None:
        self._stopping = stopping
        restored = await self.outbox.restore()
        if restored:
            log.info("room.outbox_restored", room=self.name, lines=restored)
        try:
            await self._loop(stopping)
        finally:
            if self.state is not RoomState.CLOSED:
                self._transition(RoomState.CLOSED, "stopped")

    # the loop --------------------------------------------------------------------------------
    async def _loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            if self.state is RoomState.KICKED:
                winner, _ = await race(
                    {"stop": stopping.wait, "wake": self._wake.wait}, label=f"room.{self.name}.kicked"
                )
                if winner == "stop":
                    return
                self.kicked_reason = None
            failure = await self._connection(stopping)
            if failure is None:
                return
            if failure.kicked is not None and is_fatal_kick(failure.kicked):
                self.kicked_reason = failure.kicked
                self._transition(RoomState.KICKED, f"kicked: {failure.kicked}")
                log.error("room.kicked", room=self.name, reason=failure.kicked)
                self.bus.publish(
                    "room.kicked", {"room": self.name, "reason": failure.kicked}, source="cytube"
                )
                continue
            if not failure.immediate:
                self.attempt += 1
            limit = self.config.give_up_after_attempts
            if limit is not None and self.attempt >= limit:
                self._transition(RoomState.CLOSED, f"gave up after {self.attempt} attempts: {failure.reason}")
                self.bus.publish(
                    "room.gave_up",
                    {"room": self.name, "attempts": self.attempt, "reason": failure.reason},
                    source="cytube",
                )
                return
            delay = (
                0.0
                if failure.immediate
                else reconnect_delay(
                    self.attempt,
                    self.rng,
                    self.config.backoff,
                    rate_limited=failure.rate_limited,
                    rate_limit_min_wait=self.config.rate_limit_min_wait_seconds,
                    previous=self._last_delay,
                )
            )
            self._last_delay = delay
            self.reconnects += 1
            self.metrics.room_reconnects.labels(room=self.name, reason=failure.reason).inc()
            self._transition(RoomState.BACKING_OFF, f"{failure.reason}: {failure.detail}", next_delay=delay)
            use_probe = (
                self.config.probe.enabled and not failure.rate_limited and failure.reason in _PROBE_REASONS
            )
            if not await self._back_off(stopping, delay, use_probe):
                return

    async def _back_off(self, stopping: asyncio.Event, delay: float, use_probe: bool) -> bool:
        """Wait ``delay`` (or until a probe succeeds / a reconnect is requested); False on stop."""
        contenders: dict[str, Any] = {
            "timer": lambda: self.clock.sleep(delay),
            "stop": stopping.wait,
            "wake": self._wake.wait,
        }
        if use_probe and delay > 0:
            contenders["probe"] = self._probe_until_reachable
        winner, _ = await race(contenders, label=f"room.{self.name}.backoff")
        if winner != "timer":
            log.info("room.backoff_cut_short", room=self.name, by=winner)
        return winner != "stop"

    async def _probe_until_reachable(self) -> None:
        number = 0
        while True:
            await self.clock.sleep(probe_delay(number, self.probe_rng, self.config.probe))
            number += 1
            if await self.endpoint.probe():
                return

    async def _connection(self, stopping: asyncio.Event) -> _Failure | None:
        """One attempt: discover, connect, join, serve while READY. None means 'stopping'."""
        self._wake.clear()
        self._transition(RoomState.DISCOVERING, "attempt")
        stop_or: dict[str, Any] = {"stop": stopping.wait}
        try:
            winner, url = await race(
                {**stop_or, "resolve": self.endpoint.resolve}, label=f"room.{self.name}.resolve"
            )
        except ConnectFailed as exc:
            return _Failure("discovery", exc.reason)
        if winner == "stop":
            return None
        self._transition(RoomState.CONNECTING, "server found")
        transport = self.transport_factory(self.name, self.clock)
        try:
            winner, _ = await race(
                {
                    **stop_or,
                    "connect": lambda: transport.connect(url, timeout=self.config.connect_timeout_seconds),
                },
                label=f"room.{self.name}.connect",
            )
            if winner == "stop":
                return None
        except RateLimited as exc:
            await transport.close()
            return _Failure("rate_limited", exc.reason, rate_limited=True)
        except TransportError as exc:
            await transport.close()
            return _Failure("connect_failed", exc.reason)
        self._transport = transport
        self._transition(RoomState.JOINING, "connected")
        session = Session(
            room=self.name,
            channel=self.room.channel,
            credentials=self._credentials(),
            transport=transport,
            clock=self.clock,
            config=self.config,
            metrics=self.metrics,
            publish=lambda name, data: self.bus.publish(name, data, source="cytube"),
            observe=self.channel.observe,
        )
        self._session = session
        self.channel.connection_started()
        try:
            return await self._serve(session, transport, stopping)
        finally:
            self.channel.connection_ended()
            if self.state is RoomState.READY:
                self._left_ready()
            await transport.close()
            self._session = None
            self._transport = None
            self.metrics.room_last_frame_age.labels(room=self.name).set(0)

    async def _serve(
        self, session: Session, transport: Transport, stopping: asyncio.Event
    ) -> _Failure | None:
        try:
            winner, result = await race(
                {
                    "stop": stopping.wait,
                    "wake": self._wake.wait,
                    "pump": session.pump,
                    "main": lambda: self._ready_phase(session, transport),
                },
                label=f"room.{self.name}.serve",
            )
        except Kicked as exc:
            return _Failure("kicked", exc.reason, kicked=session.kick_reason or exc.reason)
        except LoginFailed as exc:
            self.bus.publish("room.login_failed", {"room": self.name, "reason": exc.reason}, source="cytube")
            return self._kick_or(session, _Failure("login_failed", exc.reason))
        except SessionTimeout as exc:
            return self._kick_or(session, _Failure("session_timeout", str(exc)))
        except TransportError as exc:
            return self._kick_or(session, _Failure("disconnected", exc.reason))
        except DazError as exc:
            return self._kick_or(session, _Failure("session_error", str(exc)))
        if winner == "stop":
            return None
        if winner == "wake":
            return _Failure("requested", self._wake_reason, immediate=True)
        if winner == "pump":
            error: TransportError = result
            return self._kick_or(session, _Failure("disconnected", error.reason))
        return self._kick_or(session, _Failure(str(result), "teardown"))

    def _kick_or(self, session: Session, failure: _Failure) -> _Failure:
        if session.kick_reason is not None:
            return _Failure("kicked", session.kick_reason, kicked=session.kick_reason)
        return failure

    async def _ready_phase(self, session: Session, transport: Transport) -> str:
        await session.establish()
        now = self.clock.monotonic()
        if self.lost_at is not None:
            self.metrics.room_ready_seconds.labels(room=self.name).observe(max(0.0, now - self.lost_at))
        self.ready_since = now
        self.next_delay = None
        self._transition(RoomState.READY, f"logged in as {session.name}")
        self.bus.publish("room.ready", {"room": self.name, "user": session.name}, source="cytube")
        _, reason = await race(
            {"sender": lambda: self._sender(session), "watchdog": lambda: self._watchdog(session, transport)},
            label=f"room.{self.name}.ready",
        )
        return str(reason)

    def _left_ready(self) -> None:
        now = self.clock.monotonic()
        ready_for = now - (self.ready_since if self.ready_since is not None else now)
        cfg = self.config
        if ready_for < cfg.stable_after_seconds:
            self.metrics.room_flaps.labels(room=self.name).inc()
        self._flaps = record_flap(
            self._flaps, now, ready_for, cfg.stable_after_seconds, cfg.flap_window_seconds
        )
        degraded = is_degraded(self._flaps, now, cfg.flap_window_seconds, cfg.flap_threshold)
        if degraded and not self._degraded:
            log.warning("room.degraded", room=self.name, flaps=len(self._flaps))
            self.bus.publish("room.degraded", {"room": self.name, "flaps": len(self._flaps)}, source="cytube")
        self._degraded = degraded
        self.lost_at = now
        self.ready_since = None

    # READY-phase workers ---------------------------------------------------------------------
    async def _watchdog(self, session: Session, transport: Transport) -> str:
        interval, timeout = transport.ping_interval or 25.0, transport.ping_timeout or 120.0
        period = min(1.0, max(0.05, (interval + timeout) / 8))
        reset_done = False
        stale_reported = False
        while True:
            await self.clock.sleep(period)
            now = self.clock.monotonic()
            if not reset_done and is_stable(self.ready_since, now, self.config.stable_after_seconds):
                reset_done = True
                self.attempt = 0
                self._last_delay = None
            last = transport.last_frame_at
            self.metrics.room_last_frame_age.labels(room=self.name).set(0 if last is None else now - last)
            verdict = liveness(
                now,
                last_frame_at=last,
                ping_interval=transport.ping_interval,
                ping_timeout=transport.ping_timeout,
                margin=self.config.liveness_margin_seconds,
                media_playing=self.channel.playing,
                last_media_update_at=session.last_media_update_at,
                media_timeout=self.config.media_update_timeout_seconds,
            )
            if verdict.kind is Liveness.DEAD:
                log.warning(
                    "room.connection_dead", room=self.name, reason=verdict.reason, frame_age=verdict.frame_age
                )
                return verdict.reason
            if verdict.kind is Liveness.MEDIA_STALE and not stale_reported:
                stale_reported = True
                self.bus.publish("room.media_stale", {"room": self.name}, source="cytube")
            elif verdict.kind is Liveness.ALIVE:
                stale_reported = False

    async def _sender(self, session: Session) -> str:
        outbox = self.outbox
        while True:
            await outbox.wait_nonempty()
            line = outbox.head()
            if line is None:
                continue
            if line.kind == "action":
                # A channel action, in order with the lines around it: settled (confirmed, refused
                # or failed) before the next item goes out. A lost connection cancels this mid-flight
                # and leaves it at the head, in doubt, for the next connection to reconcile.
                teardown = await self.actions.deliver(session, line)
                if teardown is not None:
                    return teardown
                continue
            if outbox.in_doubt_since_ms is not None and await self._settled_by_backlog(session, line):
                continue
            fut = session.expect(line)
            outbox.mark_sent(self._now_ms())
            try:
                await session.emit_line(line)
                outcome = await wait_for(
                    self.clock,
                    self.config.delivery_timeout_seconds,
                    _shielded(fut),
                    label=f"room.{self.name}.echo",
                )
            except TimeoutError:
                self.metrics.messages_sent.labels(room=self.name, outcome="timeout").inc()
                if outbox.note_echo_timeout() >= MAX_ECHO_TIMEOUTS:
                    outbox.drop_head()  # not acked: the journal's copy stays for the retry queue
                    self.bus.publish(
                        "room.line.failed",
                        {"room": self.name, "key": line.key, "reason": "no echo"},
                        correlation_id=line.correlation_id,
                        source="cytube",
                    )
                    continue
                return "echo_timeout"  # in doubt: the re-join's backlog replay decides
            finally:
                session.disarm()
            if isinstance(outcome, CooledDown):
                outbox.mark_not_sent()
                self.metrics.messages_sent.labels(room=self.name, outcome="cooldown").inc()
                await self.clock.sleep(max(outcome.milliseconds, 1) / 1000)
                continue
            assert isinstance(outcome, Echo)  # noqa: S101 - the two outcomes are exhaustive
            await self._delivered(line, outcome.time_ms, "delivered")

    async def _settled_by_backlog(self, session: Session, line: OutboundLine) -> bool:
        sent_ms = self.outbox.in_doubt_since_ms or 0
        after = (
            self.outbox.last_echo_ms
            if self.outbox.last_echo_ms is not None
            else sent_ms - CLOCK_SKEW_ALLOWANCE_MS
        )
        found = session.backlog_confirms(line, after_ms=after)
        if found is None:
            log.info("room.line_resent", room=self.name, key=line.key)
            return False
        await self._delivered(line, found.time_ms, "deduplicated")
        return True

    async def _delivered(self, line: OutboundLine, echo_ms: int, outcome: str) -> None:
        await self.outbox.ack_head(echo_ms)
        self.metrics.messages_sent.labels(room=self.name, outcome=outcome).inc()
        self.bus.publish(
            "room.line.delivered",
            {"room": self.name, "key": line.key},
            correlation_id=line.correlation_id,
            source="cytube",
        )

    # helpers ---------------------------------------------------------------------------------
    def _credentials(self) -> Credentials:
        password = self.room.resolved_password()
        channel_pw = self.room.channel_password
        return Credentials(
            name=self.room.username or self.guest_name,
            password=password.get_secret_value() if password is not None else None,
            channel_password=channel_pw.get_secret_value() if channel_pw is not None else None,
        )

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def _transition(self, target: RoomState, reason: str, *, next_delay: float | None = None) -> None:
        check_transition(self.state, target)
        previous, self.state = self.state, target
        self.state_since = self.clock.monotonic()
        self.next_delay = next_delay
        self._announce(StateChange(
            ROOM, self.name, previous.value, target.value, reason,
            details={"attempt": self.attempt, "next_delay": next_delay},
        ))


def _shielded(fut: asyncio.Future[Any]) -> Any:
    return lambda: asyncio.shield(fut)
