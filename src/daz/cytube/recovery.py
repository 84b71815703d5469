"""What a room does after a connection ends: the taxonomy's decisions applied, backoff, holding
in KICKED or STOPPED, and the half-open replacement. A part of ``RoomSupervisor`` (its base class),
kept apart so each module stays readable; the decisions themselves are pure (``outcomes.py``,
``states.py``).
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
from daz.cytube.admission import ServerGate
from daz.cytube.discovery import Endpoint
from daz.cytube.outcomes import Action, Decision, Outcome, decide
from daz.cytube.states import RoomState, probe_delay, reconnect_delay
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.transport.base import Transport

log = structlog.get_logger("daz.cytube")

# Failures after which the server may simply be unreachable, so the cheap probe can cut the wait.
PROBE_REASONS = frozenset({"discovery", "connect_failed", "disconnected", "no_frames", "media_timeout"})
# Endings after which the link may be half-open: recover make-before-break (a new session first).
SUSPECT_REASONS = frozenset({"half_open", "echo_timeout"})


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one connection attempt or session ended, as the supervisor saw it."""

    reason: str
    detail: str
    rate_limited: bool = False
    outcome: Outcome | None = None
    immediate: bool = False


class RoomRecovery:
    """The recovery half of ``RoomSupervisor``; the names below are the supervisor's."""

    name: str
    room: RoomConfig
    config: CytubeConfig
    bus: EventBus
    metrics: DazMetrics
    clock: Clock
    rng: random.Random
    probe_rng: random.Random
    endpoint: Endpoint
    state: RoomState
    attempt: int
    reconnects: int
    refusals: int
    kicked_reason: str | None
    guest_name: str
    _last_delay: float | None
    _hold_for: float | None
    _hold_name_until: float | None
    _wake: asyncio.Event
    _wake_reason: str
    _stop_request: str | None
    _gate: ServerGate | None
    _retiring: Transport | None
    _connected_at: float | None

    def _transition(self, target: RoomState, reason: str, *, next_delay: float | None = None) -> None:
        raise NotImplementedError

    def _publish(self, name: str, **data: Any) -> None:
        raise NotImplementedError

    def _release_slot(self) -> None:
        raise NotImplementedError

    def _is_guest(self) -> bool:
        raise NotImplementedError

    def _draw_guest_name(self) -> str:
        raise NotImplementedError

    def _password_changed(self) -> bool:
        raise NotImplementedError

    async def _hold(self, stopping: asyncio.Event) -> bool:
        """KICKED or STOPPED: wait for a restart (or the configured slow retry); False on stop."""
        while True:
            contenders: dict[str, Any] = {"stop": stopping.wait, "wake": self._wake.wait}
            hold_for = self._hold_for
            if hold_for is not None:
                contenders["timer"] = lambda: self.clock.sleep(hold_for)  # noqa: B023 - awaited now
            winner, _ = await race(contenders, label=f"room.{self.name}.{self.state.value}")
            if winner == "stop":
                return False
            self._wake.clear()
            if winner == "wake" and self._stop_request is not None:
                continue  # asked to stop again while stopped
            self.kicked_reason = None
            self._hold_for = None
            by = "timer" if winner == "timer" else self._wake_reason
            log.info("room.restarting", room=self.name, by=by)
            return True

    async def _after(self, failure: Failure, stopping: asyncio.Event) -> bool:
        """Answer one failure: its decision, then the wait it calls for. False on stop."""
        if failure.reason in SUSPECT_REASONS:
            return await self._replace(failure, stopping)
        decision = self._decide(failure)
        if decision is not None:
            return await self._apply(decision, failure, stopping)
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
            return False
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
        use_probe = (
            self.config.probe.enabled and not failure.rate_limited and failure.reason in PROBE_REASONS
        )
        return await self._reconnect_after(
            failure, f"{failure.reason}: {failure.detail}", delay, stopping, use_probe=use_probe
        )

    def _decide(self, failure: Failure) -> Decision | None:
        """The taxonomy's decision for a refusal or kick (None: an ordinary failure, back off)."""
        if failure.outcome is None:
            return None
        self.refusals += 1
        self.metrics.room_refusals.labels(room=self.name, outcome=failure.outcome.value).inc()
        guest = self._is_guest()
        changed = False
        if failure.outcome in (Outcome.BAD_CREDENTIALS, Outcome.INVALID_NAME) and not guest:
            changed = self._password_changed()
        return decide(
            failure.outcome, failure.detail, self.config, guest=guest,
            name_configured=self.room.username is not None, password_changed=changed,
        )

    async def _apply(self, decision: Decision, failure: Failure, stopping: asyncio.Event) -> bool:
        gate = self._gate
        if decision.bug:
            log.error(
                "room.kicked_for_admin_action", room=self.name, reason=failure.detail,
                hint="a caller sent an admin action without the rank; check permissions before sending",
            )
        if failure.outcome is Outcome.GUEST_WINDOW and gate is not None:
            gate.guest_refused()
        if decision.new_guest_name:
            self.guest_name = self._draw_guest_name()
        match decision.action:
            case Action.KICKED:
                self.kicked_reason = failure.detail
                self._release_slot()
                self._transition(RoomState.KICKED, decision.reason)
                log.error("room.kicked", room=self.name, reason=failure.detail)
                self._publish("room.kicked", reason=failure.detail)
                return True
            case Action.STOP:
                self._stop(decision.reason, retry_after=decision.delay, outcome=failure.outcome)
                return True
            case Action.PARK:
                if gate is not None:
                    gate.socket_cap_hit(self.name)
                self._transition(RoomState.PARKED, decision.reason)
                self._publish("room.parked", reason=decision.reason)
                return True
            case Action.RETRY:
                delay = decision.delay or 0.0
                return await self._reconnect_after(failure, decision.reason, delay, stopping)
            case Action.BACK_OFF:
                self.attempt += 1
                delay = reconnect_delay(
                    self.attempt, self.rng, self.config.backoff, previous=self._last_delay
                )
                self._last_delay = delay
                return await self._reconnect_after(failure, decision.reason, delay, stopping)

    def _stop(self, reason: str, *, retry_after: float | None, outcome: Outcome | None = None) -> None:
        self._release_slot()
        self._hold_for = retry_after
        self._transition(RoomState.STOPPED, reason, next_delay=retry_after)
        log.warning("room.stopped", room=self.name, reason=reason, retry_in=retry_after)
        self.bus.publish(
            "room.stopped",
            {"room": self.name, "reason": reason, "outcome": outcome.value if outcome else "operator",
             "retry_in": retry_after},
            source="cytube",
        )

    async def _reconnect_after(self, failure: Failure, reason: str, delay: float, stopping: asyncio.Event,
                               *, use_probe: bool = False) -> bool:
        """Count a reconnect for ``failure``, enter BACKING_OFF and wait ``delay``; False on stop."""
        self.reconnects += 1
        self.metrics.room_reconnects.labels(room=self.name, reason=failure.reason).inc()
        self._transition(RoomState.BACKING_OFF, reason, next_delay=delay)
        return await self._back_off(stopping, delay, use_probe)

    async def _back_off(self, stopping: asyncio.Event, delay: float, use_probe: bool) -> bool:
        """Wait ``delay`` (or until a probe succeeds / a reconnect is requested); False on stop."""
        contenders: dict[str, Any] = {
            "timer": lambda: self.clock.sleep(delay),
            "stop": stopping.wait,
            "wake": self._wake.wait,
        }
        if use_probe and delay > 0:
            contenders["probe"] = self._probe_until_reachable
            if self._gate is not None:
                contenders["server_back"] = self._gate.server_back  # another room got in
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
                if self._gate is not None:
                    self._gate.reachable()
                return
            if self._gate is not None:
                self._gate.server_down()

    # half-open recovery ----------------------------------------------------------------------
    async def _retire(self, transport: Transport, reason: str) -> None:
        """A suspect link: give its slot back as a ghost (the server may count it until it drops it)
        and keep it open until the replacement session is READY (make-before-break). A guest in
        ``same_name`` mode closes it now and waits for the server to drop it instead."""
        interval = transport.ping_interval or 25.0
        timeout = transport.ping_timeout or 120.0
        since = transport.last_ping_at
        if since is None:
            since = self._connected_at if self._connected_at is not None else self.clock.monotonic()
        ghost_until = since + interval + timeout + self.config.liveness_margin_seconds
        if self._gate is not None:
            self._gate.release(self.name, ghost_until=ghost_until)
        if self._is_guest() and (self.config.half_open_guest == "same_name" or self.room.username):
            # The name cannot change: close, and after a missed PING wait until the server has
            # dropped the old socket (an echo timeout's link may be alive: its close frees the name).
            await transport.close()
            self._hold_name_until = ghost_until if reason == "half_open" else None
            return
        await self._close_retiring()  # at most one old socket is kept
        self._retiring = transport
        if self._is_guest():
            self.guest_name = self._draw_guest_name()  # the old name stays taken until the server drops it

    async def _close_retiring(self) -> None:
        retiring, self._retiring = self._retiring, None
        if retiring is not None:
            await retiring.close()

    async def _replace(self, failure: Failure, stopping: asyncio.Event) -> bool:
        """Open the replacement session at once (no attempt charged); a ``same_name`` guest first
        waits until the server has dropped the old socket and with it the name."""
        hold, self._hold_name_until = self._hold_name_until, None
        delay = 0.0 if hold is None else max(0.0, hold - self.clock.monotonic())
        return await self._reconnect_after(
            failure, f"{failure.reason}: replacing a suspect connection", delay, stopping
        )
