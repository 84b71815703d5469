"""``RoomSupervisor``: keeps one room joined, forever, within the server's rules.

One supervisor per room; it owns the room's connection, session and outbox sender. Every state
change goes through the pure transition table in ``states.py`` and is published as
``room.state_changed``, logged and set on the ``daz_room_state`` gauge. Before each connection the
room asks its server's ``ServerGate`` (``admission.py``) for a socket slot (PARKED while none is
free), a guest-login turn (guests) and a connection token (WAITING meanwhile). Every refusal and kick
is classified by ``outcomes.py`` and answered by its pure decision. All waits race against
``stopping`` and a wake-up (reconnect, restart, stop request), so no wait outlives a stop.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import structlog

from daz.aio import race
from daz.clock import Clock
from daz.config import CytubeConfig, RoomConfig
from daz.cytube.action_flight import ActionSender, ActionTimings, Settled
from daz.cytube.admission import Admission, ServerGate
from daz.cytube.ban_wire import Banlist
from daz.cytube.bans import check_banlist, fetch_banlist
from daz.cytube.channel import ChannelState
from daz.cytube.channel.replica import ChannelReplica
from daz.cytube.discovery import Endpoint
from daz.cytube.outbox import Outbox
from daz.cytube.outcomes import Outcome, classify_kick, classify_login_error
from daz.cytube.recovery import SUSPECT_REASONS, Failure, RoomRecovery
from daz.cytube.scheduler import Priority, priority
from daz.cytube.sender import LineSender
from daz.cytube.session import Credentials, Session
from daz.cytube.states import (
    Liveness,
    RoomState,
    check_transition,
    is_degraded,
    is_stable,
    liveness,
    ping_overdue,
    record_flap,
)
from daz.errors import (
    ChannelPasswordRefused,
    ConfigError,
    ConnectFailed,
    DazError,
    Kicked,
    LoginFailed,
    RateLimited,
    RoomNotReady,
    ServerUnreachable,
    SessionTimeout,
    TransportError,
)
from daz.events.bus import EventBus
from daz.events.state_change import ROOM, StateChange, StateChangeHook
from daz.metrics import DazMetrics
from daz.transport.base import Transport, TransportFactory

log = structlog.get_logger("daz.cytube")

_HOLDING = frozenset({RoomState.KICKED, RoomState.STOPPED})


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
    reason: str = ""  # why the room is in its state (the last transition's reason, kept current)
    server: str | None = None  # "host:port" of the room's CyTube server once known
    refusals: int = 0  # server refusals and kicks so far (rate limit, login, kicks)


class RoomSupervisor(RoomRecovery):
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
        admission: Admission | None = None,
        index: int = 0,
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
        self.admission = admission if admission is not None else Admission(config, clock, metrics)
        self.index = index
        self.guest_name = guest_name or self._draw_guest_name()
        self.state = RoomState.DISCONNECTED
        self.state_since = clock.monotonic()
        self.reason = "not started"
        self.attempt = 0
        self.next_delay: float | None = None
        self.reconnects = 0
        self.refusals = 0
        self.kicked_reason: str | None = None
        self.ready_since: float | None = None
        self.lost_at: float | None = clock.monotonic()
        self.ever_ready = False
        self._flaps: tuple[float, ...] = ()
        self._degraded = False
        self._session: Session | None = None
        self._transport: Transport | None = None
        self._connected_at: float | None = None
        self._gate: ServerGate | None = None
        self._retiring: Transport | None = None
        self._password_tried: str | None = None
        self._hold_name_until: float | None = None
        self._wake = asyncio.Event()
        self._wake_reason = "requested"
        self._stop_request: str | None = None
        self._hold_for: float | None = None
        self._last_delay: float | None = None
        # The channel replica outlives connections: resync diffs against it after a reconnect.
        self.channel = ChannelReplica(self.name, lambda name, data: bus.publish(name, data, source="cytube"))
        self.actions = ActionSender(
            self.name, outbox, clock,
            ActionTimings(config.action_timeout_seconds, config.action_silent_retries),
            replica=self.live_channel, on_settled=on_action_settled, metrics=metrics,
            publish=lambda name, data, cid: bus.publish(name, data, correlation_id=cid, source="cytube"),
        )
        self.sender = LineSender(
            room=self.name, outbox=outbox, config=config, bus=bus, metrics=metrics, clock=clock,
            now_ms=self._now_ms, actions=self.actions,
        )
        self._announce = StateChangeHook(bus=bus, metrics=metrics)
        self._announce.initial(ROOM, self.name, self.state.value)

    # public ----------------------------------------------------------------------------------
    def status(self) -> RoomStatus:
        now = self.clock.monotonic()
        session, transport = self._session, self._transport
        window = self.config.flap_window_seconds
        reason = self.reason
        if self.state is RoomState.PARKED and self._gate is not None:
            reason = self._gate.parked_reason()  # the count of waiting rooms moves while parked
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
            reason=reason,
            server=self._gate.key if self._gate is not None else None,
            refusals=self.refusals,
        )

    def live_channel(self) -> ChannelState | None:
        """The replica while it follows the server (complete for this connection), else None: what
        actions are decided against (an in-doubt action must see the RESYNCED replica)."""
        return self.channel.snapshot if self.channel.live else None

    async def banlist(self, timeout: float | None = None) -> Banlist:
        """The channel's ban list, asked for now on the live connection: a query, never queued (a
        ban list from before a reconnect could be stale). ``RoomNotReady`` unless READY here;
        ``ActionNotPermitted`` (nothing sent) without the ``ban`` permission; ``BanlistUnanswered``
        when no answer comes within ``timeout`` (default ``action_timeout_seconds``)."""
        session, state = self._session, self.live_channel()
        if self.state is not RoomState.READY or session is None or state is None:
            raise RoomNotReady(
                f"banlist: room {self.name} is {self.state.value}, not READY with a complete replica "
                "(in a cluster, only the instance holding the room can ask); ask again after room.ready",
                operation_type="cytube_query")
        denied = check_banlist(state)
        if denied is not None:
            raise denied
        wait = self.config.action_timeout_seconds if timeout is None else timeout
        return await fetch_banlist(session, room=self.name, timeout=wait)

    def request_reconnect(self, reason: str) -> None:
        """Tear the connection down (or cut a wait short) and reconnect now; also restarts a KICKED or
        STOPPED room (an operator's ``daz rooms restart``)."""
        self._stop_request = None
        self._wake_reason = reason
        self._wake.set()

    def request_stop(self, reason: str) -> None:
        """Leave the room and stay STOPPED (slot given back) until ``request_reconnect``."""
        self._stop_request = reason
        self._wake_reason = reason
        self._wake.set()

    def reset_after_crash(self) -> None:
        """Return to DISCONNECTED after an unexpected error so ``run`` can start over."""
        self.state = RoomState.DISCONNECTED
        self.state_since = self.clock.monotonic()
        self._session = None
        self._transport = None
        self._release_slot()

    async def run(self, stopping: asyncio.Event) -> None:
        restored = await self.outbox.restore()
        if restored:
            log.info("room.outbox_restored", room=self.name, lines=restored)
        try:
            await self._loop(stopping)
        finally:
            await self._close_retiring()
            self._release_slot()
            if self.state is not RoomState.CLOSED:
                self._transition(RoomState.CLOSED, "stopped")

    # the loop --------------------------------------------------------------------------------
    async def _loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            if self._stop_request is not None and self.state is not RoomState.STOPPED:
                self._stop(f"stopped by operator: {self._stop_request}", retry_after=None)
            if self.state in _HOLDING and not await self._hold(stopping):
                return
            failure = await self._connection(stopping)
            if failure is None:
                return
            if failure.reason not in SUSPECT_REASONS:
                await self._close_retiring()
            if self._stop_request is not None:
                continue  # the top of the loop stops the room
            if not await self._after(failure, stopping):
                return

    # one connection --------------------------------------------------------------------------
    async def _connection(self, stopping: asyncio.Event) -> Failure | None:
        """One attempt: discover, be admitted, connect, join, serve while READY. None: stopping."""
        self._wake.clear()
        self._transition(RoomState.DISCOVERING, "attempt")
        interrupt: dict[str, Any] = {"stop": stopping.wait, "wake": self._wake.wait}
        try:
            winner, url = await race(
                {**interrupt, "resolve": self.endpoint.resolve}, label=f"room.{self.name}.resolve"
            )
        except ConnectFailed as exc:
            if self._gate is not None:
                self._gate.server_down()
            return Failure("discovery", exc.reason or "")
        if winner != "resolve":
            return self._interrupted(winner)
        gate = self._use_gate(str(url))
        try:
            interrupted = await self._admit(gate, interrupt)
            if interrupted is not None:
                return self._interrupted(interrupted)
            return await self._connect_and_serve(str(url), gate, interrupt)
        finally:
            if gate.has_guest_turn(self.name):
                gate.guest_done(self.name, logged_in=False)

    async def _admit(self, gate: ServerGate, interrupt: dict[str, Any]) -> str | None:
        """Slot, guest turn, token, in that order; returns the interrupting contender's name if any."""
        prio = self._priority()
        if not gate.holds(self.name) and not gate.try_slot(self.name, prio):
            reason = gate.parked_reason()
            self._transition(RoomState.PARKED, reason)
            self._publish("room.parked", reason=reason)
            winner, _ = await race(
                {**interrupt, "slot": lambda: gate.slot(self.name, prio)}, label=f"room.{self.name}.parked"
            )
            if winner != "slot":
                return str(winner)
        # One guest login at a time only where the server has a guest window (limits off: none).
        if self._is_guest() and gate.ledger.limits.guest_login_window_seconds > 0:
            wait = gate.guest_wait()
            if wait > 0 or gate.ledger.guest_turn is not None:
                self._transition(RoomState.WAITING, f"guest-login window: {wait:.1f}s left")
            winner, _ = await race(
                {**interrupt, "guest": lambda: gate.guest_turn(self.name, prio)},
                label=f"room.{self.name}.guest_turn",
            )
            if winner != "guest":
                return str(winner)
        wait = gate.token_wait()
        if wait > 0 or gate.ledger.token_waiters:
            self._transition(RoomState.WAITING, f"connection token in {wait:.1f}s")
        contenders: dict[str, Any] = {**interrupt, "token": lambda: gate.token(self.name, prio)}
        if gate.ledger.down_seen and self.config.probe.enabled:
            # The server was seen down and our bucket may be stale: a probe that reaches it again
            # starts the ledger over (a restarted CyTube has a full bucket), granting the token.
            contenders["probe"] = self._probe_then_idle
        winner, _ = await race(contenders, label=f"room.{self.name}.token")
        return None if winner == "token" else str(winner)

    async def _probe_then_idle(self) -> None:
        await self._probe_until_reachable()
        await asyncio.Event().wait()  # the token contender ends the race

    async def _connect_and_serve(
        self, url: str, gate: ServerGate, interrupt: dict[str, Any]
    ) -> Failure | None:
        self._transition(RoomState.CONNECTING, f"token granted by {gate.key}")
        transport = self.transport_factory(self.name, self.clock)
        try:
            winner, _ = await race(
                {
                    **interrupt,
                    "connect": lambda: transport.connect(url, timeout=self.config.connect_timeout_seconds),
                },
                label=f"room.{self.name}.connect",
            )
        except RateLimited as exc:
            await transport.close()
            gate.attempt_failed()
            gate.rate_limited()  # the server's bucket is empty: ours is too, from now
            self.refusals += 1
            self.metrics.room_refusals.labels(room=self.name, outcome="rate_limited").inc()
            return Failure("rate_limited", exc.reason, rate_limited=True)
        except ServerUnreachable as exc:
            await transport.close()
            gate.unreached()
            return Failure("connect_failed", exc.reason or "")
        except TransportError as exc:
            await transport.close()
            gate.attempt_failed()
            return Failure("connect_failed", exc.reason or "")
        if winner != "connect":
            await transport.close()
            gate.attempt_failed()
            return self._interrupted(winner)
        gate.connected()
        self._transport = transport
        self._connected_at = self.clock.monotonic()
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
        failure: Failure | None = None
        try:
            failure = await self._serve(session, transport, interrupt)
            return failure
        finally:
            self.channel.connection_ended()
            if self.state is RoomState.READY:
                self._left_ready()
            if failure is not None and failure.reason in SUSPECT_REASONS:
                await self._retire(transport, failure.reason)
            else:
                await transport.close()
            self._session = None
            self._transport = None
            self.metrics.room_last_frame_age.labels(room=self.name).set(0)

    def _interrupted(self, winner: str) -> Failure | None:
        if winner == "stop":
            return None
        return Failure("requested", self._wake_reason, immediate=True)

    async def _serve(
        self, session: Session, transport: Transport, interrupt: dict[str, Any]
    ) -> Failure | None:
        try:
            winner, result = await race(
                {
                    **interrupt,
                    "pump": session.pump,
                    "main": lambda: self._ready_phase(session, transport),
                },
                label=f"room.{self.name}.serve",
            )
        except Kicked as exc:
            return self._kicked(session.kick_reason or exc.reason or "")
        except LoginFailed as exc:
            outcome = classify_login_error(exc.reason)
            self._publish("room.login_failed", reason=exc.reason, outcome=outcome.value)
            return self._kick_or(session, Failure("login_failed", exc.reason, outcome=outcome))
        except SessionTimeout as exc:
            return self._kick_or(session, Failure("session_timeout", str(exc)))
        except ChannelPasswordRefused as exc:
            return self._kick_or(
                session, Failure("channel_password", str(exc), outcome=Outcome.CHANNEL_PASSWORD)
            )
        except TransportError as exc:
            return self._kick_or(session, Failure("disconnected", exc.reason or ""))
        except DazError as exc:
            return self._kick_or(session, Failure("session_error", str(exc)))
        if winner in interrupt:
            return self._interrupted(str(winner))
        if winner == "pump":
            error: TransportError = result
            return self._kick_or(session, Failure("disconnected", error.reason or ""))
        reason = str(result)
        return self._kick_or(session, Failure(reason, "teardown", immediate=reason in SUSPECT_REASONS))

    def _kicked(self, reason: str) -> Failure:
        return Failure("kicked", reason, outcome=classify_kick(reason))

    def _kick_or(self, session: Session, failure: Failure) -> Failure:
        if session.kick_reason is not None:
            return self._kicked(session.kick_reason)
        return failure

    async def _ready_phase(self, session: Session, transport: Transport) -> str:
        await session.establish()
        now = self.clock.monotonic()
        gate = self._gate
        if gate is not None and gate.has_guest_turn(self.name):
            gate.guest_done(self.name, logged_in=True)  # the guest window starts now
        if self.lost_at is not None:
            self.metrics.room_ready_seconds.labels(room=self.name).observe(max(0.0, now - self.lost_at))
        self.ready_since = now
        self.ever_ready = True
        self.next_delay = None
        self._transition(RoomState.READY, f"logged in as {session.name}")
        self.bus.publish("room.ready", {"room": self.name, "user": session.name}, source="cytube")
        _, reason = await race(
            {
                "sender": lambda: self.sender.run(session),
                "watchdog": lambda: self._watchdog(session, transport),
            },
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

    # READY-phase watchdog --------------------------------------------------------------------
    async def _watchdog(self, session: Session, transport: Transport) -> str:
        await self._close_retiring()  # the replacement is READY: the old socket can go
        interval, timeout = transport.ping_interval or 25.0, transport.ping_timeout or 120.0
        grace = self.config.half_open_grace_seconds
        period = min(1.0, max(0.05, min((interval + timeout) / 8, (interval + grace) / 20)))
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
            if self.config.half_open_detection:
                overdue = ping_overdue(
                    now, last_ping_at=transport.last_ping_at, connected_at=self._connected_at,
                    ping_interval=transport.ping_interval, grace=grace,
                )
                if overdue is not None:
                    log.warning("room.half_open_suspected", room=self.name, ping_overdue=round(overdue, 3))
                    self.bus.publish(
                        "room.half_open", {"room": self.name, "overdue": round(overdue, 3)}, source="cytube"
                    )
                    return "half_open"
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

    # helpers ---------------------------------------------------------------------------------
    def _priority(self) -> Priority:
        return priority(self.ever_ready, self.index)

    def _use_gate(self, url: str) -> ServerGate:
        gate = self.admission.gate(url)
        if self._gate is not None and self._gate is not gate:
            self._release_slot()  # discovery moved the room to another server
        self._gate = gate
        return gate

    def _release_slot(self) -> None:
        if self._gate is not None:
            self._gate.release(self.name)

    def _is_guest(self) -> bool:
        """A login without a password is a guest login, whoever chose the name."""
        room = self.room
        return room.password is None and room.password_file is None and room.password_env is None

    def _draw_guest_name(self) -> str:
        return f"daz-{self.probe_rng.getrandbits(24):06x}"

    def _password_changed(self) -> bool:
        """Re-read the password source after a refusal: a fixed password file earns one retry."""
        try:
            current = self.room.resolved_password()
        except ConfigError:
            return False
        value = current.get_secret_value() if current is not None else None
        return value != self._password_tried

    def _credentials(self) -> Credentials:
        password = self.room.resolved_password()
        channel_pw = self.room.channel_password
        self._password_tried = password.get_secret_value() if password is not None else None
        return Credentials(
            name=self.room.username or self.guest_name,
            password=self._password_tried,
            channel_password=channel_pw.get_secret_value() if channel_pw is not None else None,
        )

    def _publish(self, name: str, **data: Any) -> None:
        self.bus.publish(name, {"room": self.name, **data}, source="cytube")

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def _transition(self, target: RoomState, reason: str, *, next_delay: float | None = None) -> None:
        check_transition(self.state, target)
        previous, self.state = self.state, target
        self.reason = reason
        self.state_since = self.clock.monotonic()
        self.next_delay = next_delay
        self._announce(StateChange(
            ROOM, self.name, previous.value, target.value, reason,
            details={"attempt": self.attempt, "next_delay": next_delay},
        ))

