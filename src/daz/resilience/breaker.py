"""``CircuitBreaker``: the async wrapper around the pure state machine in ``machine.py``.

Use ``async with breaker:`` or ``await breaker.call(fn)``; while the breaker is open both raise
``CircuitOpen(name, retry_after)`` at once, without touching the dependency. Code that admits and
reports in different places (the retry queue's gate) takes a ``Permit`` with ``try_acquire()`` and
reports through it.

Which outcomes count against the dependency: a ``DazError`` counts as a failure only when it is
``retryable`` (a non-retryable one is the caller's fault: the dependency answered, so it is recorded
as a success for the dependency's health); ``CancelledError`` never counts, nor does ``CircuitOpen``
from a nested breaker (the dependency was not asked); any other exception (an untranslated driver
error) counts as a failure, the conservative reading.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar

import structlog

from daz.clock import Clock, rfc3339
from daz.config import BreakerConfig
from daz.errors import CircuitOpen, DazError
from daz.events.bus import EventBus
from daz.events.state_change import BREAKER, StateChange, StateChangeHook
from daz.metrics import DazMetrics
from daz.resilience.machine import BreakerState, Change, Machine, Outcome, Trigger, transition
from daz.resilience.window import WindowStats, make_window

log = structlog.get_logger("daz.resilience")

T = TypeVar("T")
CloseCallback = Callable[["CircuitBreaker"], None]


class CallOutcome(StrEnum):
    """How one call ended, as the breaker counts it (also the ``outcome`` metric label)."""

    SUCCESS = "success"
    SLOW = "slow"
    FAILURE = "failure"
    CALLER_ERROR = "caller_error"  # non-retryable DazError: recorded as a success for the dependency
    CANCELLED = "cancelled"


def classify(exc: BaseException | None) -> CallOutcome:
    """The outcome class of an exception (``None`` = the call returned); slowness is added later."""
    if exc is None:
        return CallOutcome.SUCCESS
    if isinstance(exc, CircuitOpen):
        return CallOutcome.CANCELLED  # refused by a (nested) breaker: the dependency was not asked
    if isinstance(exc, DazError):
        return CallOutcome.FAILURE if exc.retryable else CallOutcome.CALLER_ERROR
    if isinstance(exc, Exception):
        return CallOutcome.FAILURE
    return CallOutcome.CANCELLED  # CancelledError, KeyboardInterrupt, SystemExit: not the dependency's doing


@dataclass(slots=True)
class Permit:
    """Admission of one call; report how it ended exactly once with ``done`` (later reports are ignored)."""

    breaker: CircuitBreaker
    epoch: int
    started: float
    finished: bool = False

    def done(self, exc: BaseException | None = None, duration: float | None = None) -> CallOutcome:
        """Report the call's end: ``exc`` is what it raised (None = returned). Returns how it counted."""
        if self.finished:
            return CallOutcome.CANCELLED
        self.finished = True
        return self.breaker.report(self, exc, duration)

    def cancel(self) -> None:
        """Hand the permit back unused (the call never reached the dependency)."""
        self.done(_NOT_CALLED)


class _NotCalled(BaseException):
    """Marker for a permit handed back unused; never raised."""


_NOT_CALLED = _NotCalled()
_NO_STATS = WindowStats()


class CircuitBreaker:
    """One breaker for one named dependency (``database``, ``cytube:<room>``, ``http:<host>``)."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        clock: Clock,
        rng: random.Random,
        bus: EventBus | None = None,
        metrics: DazMetrics | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._rng = rng
        self._bus = bus
        self._metrics = metrics
        # Labelled children resolved once: ``labels()`` per call costs more than the breaker itself.
        self._call_counters = (
            {o: metrics.breaker_calls.labels(name=name, outcome=o.value) for o in CallOutcome}
            if metrics is not None else {}
        )
        self._window = make_window(config.window_type, size=config.window_size, seconds=config.window_seconds)
        self._machine = Machine(since=clock.monotonic())
        self._on_close: list[CloseCallback] = []
        self._on_request: list[Callable[[], None]] = []
        # Admissions held by the current task: a nested call through the same breaker is covered by
        # them (``None`` marks a nested ``async with`` that took no permit of its own).
        self._held: contextvars.ContextVar[tuple[Permit | None, ...]] = contextvars.ContextVar(
            f"daz.breaker.{name}", default=()
        )
        self.last_reason: str | None = None
        self.opened_count = 0
        self.rejections = 0
        self.calls: dict[CallOutcome, int] = dict.fromkeys(CallOutcome, 0)
        self._state_changed = StateChangeHook(bus=bus, metrics=metrics)
        self._state_changed.initial(BREAKER, name, self._machine.state.value)

    # reading ---------------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        return self._machine.state

    @property
    def machine(self) -> Machine:
        return self._machine

    def stats(self) -> WindowStats:
        return self._window.stats(self._clock.monotonic())

    def allow(self) -> bool:
        """Whether a call would be admitted now. Reserves nothing; use ``try_acquire`` to call."""
        m = self._machine
        if m.state in (BreakerState.CLOSED, BreakerState.DISABLED):
            return True
        if m.state is BreakerState.OPEN:
            return self._clock.monotonic() >= m.open_until
        if m.state is BreakerState.HALF_OPEN:
            return m.probes_issued < self.config.half_open_permits
        return False

    def retry_after(self) -> float:
        """Seconds until a call may be admitted again (0 when it would be admitted now)."""
        if self.allow():
            return 0.0
        outcome = transition(self._machine, Trigger.ACQUIRE, now=self._clock.monotonic(),
                             config=self.config, stats=WindowStats())
        return outcome.retry_after

    def on_close(self, callback: CloseCallback) -> None:
        """Call ``callback(breaker)`` whenever the breaker becomes CLOSED from another state."""
        self._on_close.append(callback)

    def on_request(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` for every first-attempt request (admitted or refused), not for retries."""
        self._on_request.append(callback)

    def snapshot(self) -> dict[str, Any]:
        """Plain data for the CLI, the HTTP API and the status page."""
        now = self._clock.monotonic()
        stats = self._window.stats(now)
        m = self._machine
        next_probe: str | None = None
        if m.state is BreakerState.OPEN:
            at = max(m.open_until, now)
            next_probe = _wall_at(self._clock, at)
        return {
            "name": self.name,
            "state": m.state.value,
            "since_seconds": round(now - m.since, 3),
            "reason": self.last_reason,
            "window_type": self.config.window_type,
            "window_size": self.config.window_size if self.config.window_type == "count"
            else self.config.window_seconds,
            "calls": stats.calls,
            "failures": stats.failures,
            "slow_calls": stats.slow,
            "failure_rate": round(stats.failure_rate, 4),
            "slow_rate": round(stats.slow_rate, 4),
            "minimum_calls": self.config.minimum_calls,
            "failure_rate_threshold": self.config.failure_rate_threshold,
            "slow_call_rate_threshold": self.config.slow_call_rate_threshold,
            "retry_after_seconds": round(self.retry_after(), 3),
            "next_probe_at": next_probe,
            "half_open_probes_in_flight": m.probes_in_flight,
            "consecutive_reopens": m.reopens,
            "opened_total": self.opened_count,
            "rejections_total": self.rejections,
        }

    # calling ---------------------------------------------------------------------------------
    def try_acquire(self, *, retry: bool = False) -> Permit | None:
        """A permit to call the dependency, or None (refusal counted) while the breaker is open.

        ``retry=False`` (a first attempt) also reports the request to ``on_request`` listeners: the
        retry budget counts these as the base traffic retries are measured against.
        """
        if not retry:
            for listener in self._on_request:
                listener()
        now = self._clock.monotonic()
        outcome = self._apply(Trigger.ACQUIRE, now)
        if not outcome.admitted:
            self.rejections += 1
            if self._metrics is not None:
                self._metrics.breaker_rejections.labels(name=self.name).inc()
            return None
        return Permit(self, self._machine.epoch, now)

    def acquire(self, *, retry: bool = False) -> Permit:
        """Like ``try_acquire`` but raises ``CircuitOpen(name, retry_after)`` when refused."""
        permit = self.try_acquire(retry=retry)
        if permit is None:
            raise CircuitOpen(self.name, self.retry_after())
        return permit

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` through the breaker.

        Re-entrant: inside another admission of this breaker in the same task (an outer ``call``,
        ``async with``, or a permit ``hold``-ed by the retry gate) the call is covered by that
        admission and is neither admitted nor counted again.
        """
        if self._covered():
            return await fn()
        permit = self.acquire()
        self.hold(permit)
        try:
            result = await fn()
        except BaseException as exc:
            permit.done(exc)
            raise
        finally:
            self.unhold(permit)
        permit.done(None)
        return result

    async def __aenter__(self) -> CircuitBreaker:
        permit = None if self._covered() else self.acquire()
        self._held.set((*self._held.get(), permit))
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        held = self._held.get()
        if not held:
            return
        self._held.set(held[:-1])
        if held[-1] is not None:
            held[-1].done(exc)

    def hold(self, permit: Permit) -> None:
        """Mark ``permit`` as covering calls through this breaker in the current task (see ``call``)."""
        self._held.set((*self._held.get(), permit))

    def unhold(self, permit: Permit | None = None) -> list[Permit]:
        """Stop ``permit`` (None: every permit) covering calls in the current task; returns those dropped."""
        held = self._held.get()
        dropped = [p for p in held if p is not None and (permit is None or p is permit)]
        if dropped:
            self._held.set(tuple(p for p in held if p is None or p not in dropped))
        return dropped

    def _covered(self) -> bool:
        return any(p is None or not p.finished for p in self._held.get())

    # reporting -------------------------------------------------------------------------------
    def report(self, permit: Permit, exc: BaseException | None, duration: float | None) -> CallOutcome:
        now = self._clock.monotonic()
        elapsed = duration if duration is not None else now - permit.started
        if isinstance(exc, _NotCalled):
            kind = CallOutcome.CANCELLED
        else:
            kind = classify(exc)
            if kind is not CallOutcome.CANCELLED:
                self.calls[kind] += 1
            if self._call_counters:
                self._call_counters[kind].inc()
        slow = kind is not CallOutcome.CANCELLED and elapsed >= self.config.slow_call_duration_seconds
        if kind is CallOutcome.SUCCESS and slow:
            kind = CallOutcome.SLOW
        if kind is CallOutcome.CANCELLED:
            trigger = Trigger.CANCELLED
        elif kind is CallOutcome.FAILURE:
            trigger = Trigger.FAILURE
        else:
            trigger = Trigger.SLOW_SUCCESS if slow else Trigger.SUCCESS
        if trigger is not Trigger.CANCELLED and permit.epoch == self._machine.epoch:
            self._window.record(failed=trigger is Trigger.FAILURE, slow=slow, now=now)
        self._apply(trigger, now, epoch=permit.epoch)
        return kind

    def operate(self, trigger: Trigger) -> None:
        """An operator action (FORCE_OPEN, FORCE_CLOSE, DISABLE, RESET)."""
        self._apply(trigger, self._clock.monotonic())
        if trigger is Trigger.RESET:
            self.opened_count = 0
            self.rejections = 0
            self.calls = dict.fromkeys(CallOutcome, 0)

    # internals -------------------------------------------------------------------------------
    def _apply(self, trigger: Trigger, now: float, *, epoch: int | None = None) -> Outcome:
        # Admission never reads the window, so the closed fast path skips computing its figures.
        stats = _NO_STATS if trigger is Trigger.ACQUIRE else self._window.stats(now)
        outcome = transition(self._machine, trigger, now=now, config=self.config, stats=stats, epoch=epoch,
                             draw=self._rng.random())
        self._machine = outcome.machine
        if outcome.reset_window:
            self._window.reset()
        if outcome.change is not None:
            self._announce(outcome.change, now)
        return outcome

    def _announce(self, change: Change, now: float) -> None:
        stats = self._window.stats(now)
        self.last_reason = change.reason.value
        if change.target is BreakerState.OPEN:
            self.opened_count += 1
        retry_after = max(self._machine.open_until - now, 0.0) if change.target is BreakerState.OPEN else 0.0
        self._state_changed(StateChange(
            BREAKER, self.name, change.source.value, change.target.value, change.reason.value,
            details={"failure_rate": round(stats.failure_rate, 4), "slow_rate": round(stats.slow_rate, 4),
                     "retry_after": round(retry_after, 3)},
            log_details={"calls": stats.calls},
            warn=change.target in (BreakerState.OPEN, BreakerState.FORCED_OPEN),
        ))
        if self._metrics is not None:
            self._metrics.breaker_transitions.labels(name=self.name, to=change.target.value).inc()
        if change.target is BreakerState.CLOSED and change.source is not BreakerState.CLOSED:
            for callback in list(self._on_close):
                try:
                    callback(self)
                except Exception as exc:
                    log.exception("breaker.on_close_failed", breaker=self.name, error=repr(exc))


def _wall_at(clock: Clock, monotonic_at: float) -> str:
    return rfc3339(clock.now() + timedelta(seconds=monotonic_at - clock.monotonic()))
