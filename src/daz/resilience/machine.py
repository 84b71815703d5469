"""The circuit breaker's state machine, as a pure function: ``transition(machine, trigger, ...)``.

No I/O, no clock object, no randomness: the caller passes the clock reading, the window's figures
and one uniform draw for the break-duration jitter, and gets back the next ``Machine`` plus what
happened (admitted or not, which state change, whether the window starts afresh). The async
wrapper in ``breaker.py`` does the I/O (events, logs, metrics) from that answer.

``TRANSITION_TABLE`` lists every (state, trigger, condition) → state row; ``transition`` is written
against it and the unit tests walk every row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from daz.backoff import exponential
from daz.config import BreakerConfig
from daz.resilience.window import WindowStats


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class Trigger(StrEnum):
    ACQUIRE = "acquire"  # a caller asks to make a call
    SUCCESS = "success"  # an admitted call finished in time (or failed by the caller's fault)
    SLOW_SUCCESS = "slow_success"  # finished, but took at least slow_call_duration_seconds
    FAILURE = "failure"  # the dependency failed (a retryable error)
    CANCELLED = "cancelled"  # the call was cancelled: says nothing about the dependency
    FORCE_OPEN = "force_open"  # operator
    FORCE_CLOSE = "force_close"  # operator
    DISABLE = "disable"  # operator
    RESET = "reset"  # operator


OPERATOR_TRIGGERS = frozenset({Trigger.FORCE_OPEN, Trigger.FORCE_CLOSE, Trigger.DISABLE, Trigger.RESET})


class Reason(StrEnum):
    FAILURE_RATE = "failure_rate"
    SLOW_CALL_RATE = "slow_call_rate"
    BREAK_ELAPSED = "break_elapsed"
    PROBE_FAILED = "probe_failed"
    PROBES_SLOW = "probes_slow"
    PROBES_SUCCEEDED = "probes_succeeded"
    FORCED_OPEN = "operator_force_open"
    FORCED_CLOSE = "operator_force_close"
    DISABLED = "operator_disable"
    RESET = "operator_reset"


@dataclass(frozen=True, slots=True)
class Machine:
    """Everything the transition function needs besides the window.

    ``epoch`` changes on every state change; a call's result carries the epoch it was admitted in,
    so a late result from before the breaker opened is never mistaken for a half-open probe.
    ``reopens`` counts HALF_OPEN → OPEN in a row; the break duration grows with it.
    """

    state: BreakerState = BreakerState.CLOSED
    since: float = 0.0
    epoch: int = 0
    open_until: float = 0.0
    reopens: int = 0
    probes_issued: int = 0
    probes_in_flight: int = 0
    probes_ok: int = 0
    probes_slow: int = 0


@dataclass(frozen=True, slots=True)
class Change:
    source: BreakerState
    target: BreakerState
    reason: Reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer of ``transition``.

    ``admitted`` is set for ACQUIRE only; ``retry_after`` (seconds) accompanies a refusal.
    ``reset_window`` asks the caller to start a fresh window (the breaker closed or was reset).
    ``stale`` marks a result from an earlier epoch, which the caller must not record.
    """

    machine: Machine
    change: Change | None = None
    admitted: bool | None = None
    retry_after: float = 0.0
    reset_window: bool = False
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    source: BreakerState
    trigger: Trigger
    condition: str
    target: BreakerState
    reason: Reason | None


_C, _O, _H, _F, _D = (
    BreakerState.CLOSED,
    BreakerState.OPEN,
    BreakerState.HALF_OPEN,
    BreakerState.FORCED_OPEN,
    BreakerState.DISABLED,
)
_T = Trigger

TRANSITION_TABLE: tuple[Row, ...] = (
    Row(_C, _T.ACQUIRE, "always (admitted)", _C, None),
    Row(_C, _T.SUCCESS, "rates below thresholds or fewer than minimum_calls", _C, None),
    Row(_C, _T.SLOW_SUCCESS, "rates below thresholds or fewer than minimum_calls", _C, None),
    Row(_C, _T.SLOW_SUCCESS, ">= minimum_calls and slow rate >= slow_call_rate_threshold", _O,
        Reason.SLOW_CALL_RATE),
    Row(_C, _T.FAILURE, "rates below thresholds or fewer than minimum_calls", _C, None),
    Row(_C, _T.FAILURE, ">= minimum_calls and failure rate >= failure_rate_threshold", _O,
        Reason.FAILURE_RATE),
    Row(_C, _T.FAILURE, ">= minimum_calls, failure rate below, slow rate >= threshold", _O,
        Reason.SLOW_CALL_RATE),
    Row(_C, _T.CANCELLED, "always (not counted)", _C, None),
    Row(_O, _T.ACQUIRE, "break not elapsed (refused, retry_after = time left)", _O, None),
    Row(_O, _T.ACQUIRE, "break elapsed (admitted as the first probe)", _H, Reason.BREAK_ELAPSED),
    Row(_O, _T.SUCCESS, "late result of a call admitted before opening (ignored)", _O, None),
    Row(_O, _T.SLOW_SUCCESS, "late result (ignored)", _O, None),
    Row(_O, _T.FAILURE, "late result (ignored)", _O, None),
    Row(_O, _T.CANCELLED, "late result (ignored)", _O, None),
    Row(_H, _T.ACQUIRE, "probes issued < half_open_permits (admitted)", _H, None),
    Row(_H, _T.ACQUIRE, "all permits issued (refused)", _H, None),
    Row(_H, _T.SUCCESS, "probes still outstanding", _H, None),
    Row(_H, _T.SUCCESS, "last probe done, slow share below slow_call_rate_threshold", _C,
        Reason.PROBES_SUCCEEDED),
    Row(_H, _T.SUCCESS, "last probe done, slow share >= slow_call_rate_threshold", _O, Reason.PROBES_SLOW),
    Row(_H, _T.SLOW_SUCCESS, "probes still outstanding", _H, None),
    Row(_H, _T.SLOW_SUCCESS, "last probe done, slow share below slow_call_rate_threshold", _C,
        Reason.PROBES_SUCCEEDED),
    Row(_H, _T.SLOW_SUCCESS, "last probe done, slow share >= slow_call_rate_threshold", _O,
        Reason.PROBES_SLOW),
    Row(_H, _T.FAILURE, "any probe fails (break grows)", _O, Reason.PROBE_FAILED),
    Row(_H, _T.CANCELLED, "the permit is handed back", _H, None),
    Row(_F, _T.ACQUIRE, "always (refused until an operator acts)", _F, None),
    Row(_F, _T.SUCCESS, "ignored", _F, None),
    Row(_F, _T.SLOW_SUCCESS, "ignored", _F, None),
    Row(_F, _T.FAILURE, "ignored", _F, None),
    Row(_F, _T.CANCELLED, "ignored", _F, None),
    Row(_D, _T.ACQUIRE, "always (admitted, never trips)", _D, None),
    Row(_D, _T.SUCCESS, "ignored", _D, None),
    Row(_D, _T.SLOW_SUCCESS, "ignored", _D, None),
    Row(_D, _T.FAILURE, "ignored", _D, None),
    Row(_D, _T.CANCELLED, "ignored", _D, None),
    *(
        row
        for state in BreakerState
        for row in (
            Row(state, _T.FORCE_OPEN, "operator", _F, Reason.FORCED_OPEN),
            Row(state, _T.FORCE_CLOSE, "operator (break growth forgotten, fresh window)", _C,
                Reason.FORCED_CLOSE),
            Row(state, _T.DISABLE, "operator", _D, Reason.DISABLED),
            Row(state, _T.RESET, "operator (fresh window, counters cleared)", _C, Reason.RESET),
        )
    ),
)


def break_duration(reopens: int, config: BreakerConfig, draw: float) -> float:
    """How long to stay OPEN after ``reopens`` HALF_OPEN → OPEN in a row (0 = first opening).

    ``break_seconds · break_multiplier^reopens``, capped at ``max_break_seconds``, then spread by
    ±``break_jitter`` using ``draw`` ∈ [0, 1) — never beyond the cap, but the spread stays wide at
    the cap (``[(1-j)·cap, cap]``) so breakers that opened together do not probe together.
    """
    base = exponential(reopens + 1, config.break_seconds, config.break_multiplier, config.max_break_seconds)
    low = (1 - config.break_jitter) * base
    high = min((1 + config.break_jitter) * base, config.max_break_seconds)
    return low + min(max(draw, 0.0), 1.0) * (high - low) if high > low else low


def _open(m: Machine, now: float, reason: Reason, *, reopens: int, config: BreakerConfig,
          draw: float) -> Outcome:
    until = now + break_duration(reopens, config, draw)
    new = Machine(BreakerState.OPEN, since=now, epoch=m.epoch + 1, open_until=until, reopens=reopens)
    return Outcome(new, Change(m.state, BreakerState.OPEN, reason))


def _move(m: Machine, target: BreakerState, reason: Reason, now: float, *,
          reset_window: bool = False) -> Outcome:
    new = Machine(target, since=now, epoch=m.epoch + 1)
    return Outcome(new, Change(m.state, target, reason), reset_window=reset_window)


def _tripped(stats: WindowStats, config: BreakerConfig) -> Reason | None:
    if stats.calls < config.minimum_calls:
        return None
    if stats.failures and stats.failure_rate >= config.failure_rate_threshold:
        return Reason.FAILURE_RATE
    if stats.slow and stats.slow_rate >= config.slow_call_rate_threshold:
        return Reason.SLOW_CALL_RATE
    return None


def transition(
    m: Machine,
    trigger: Trigger,
    *,
    now: float,
    config: BreakerConfig,
    stats: WindowStats,
    epoch: int | None = None,
    draw: float = 0.5,
) -> Outcome:
    """The next state. ``stats`` already includes the call being reported; ``epoch`` is the epoch the
    call was admitted in (results only); ``draw`` ∈ [0, 1) jitters a new break duration."""
    s = m.state
    if trigger in OPERATOR_TRIGGERS:
        if trigger is Trigger.FORCE_OPEN:
            return _move(m, BreakerState.FORCED_OPEN, Reason.FORCED_OPEN, now)
        if trigger is Trigger.DISABLE:
            return _move(m, BreakerState.DISABLED, Reason.DISABLED, now)
        reason = Reason.FORCED_CLOSE if trigger is Trigger.FORCE_CLOSE else Reason.RESET
        return _move(m, BreakerState.CLOSED, reason, now, reset_window=True)

    if trigger is Trigger.ACQUIRE:
        if s in (BreakerState.CLOSED, BreakerState.DISABLED):
            return Outcome(m, admitted=True)
        if s is BreakerState.FORCED_OPEN:
            return Outcome(m, admitted=False, retry_after=config.max_break_seconds)
        if s is BreakerState.OPEN:
            if now < m.open_until:
                return Outcome(m, admitted=False, retry_after=m.open_until - now)
            probing = Machine(BreakerState.HALF_OPEN, since=now, epoch=m.epoch + 1, reopens=m.reopens,
                              probes_issued=1, probes_in_flight=1)
            return Outcome(probing, Change(s, BreakerState.HALF_OPEN, Reason.BREAK_ELAPSED), admitted=True)
        # HALF_OPEN
        if m.probes_issued < config.half_open_permits:
            return Outcome(replace(m, probes_issued=m.probes_issued + 1,
                                   probes_in_flight=m.probes_in_flight + 1), admitted=True)
        # Probes are in flight; their answer is due within about a slow-call duration.
        return Outcome(m, admitted=False, retry_after=min(config.break_seconds,
                                                          config.slow_call_duration_seconds))

    # a result
    if epoch is not None and epoch != m.epoch:
        return Outcome(m, stale=True)
    if s is BreakerState.CLOSED:
        if trigger is Trigger.CANCELLED:
            return Outcome(m)
        tripped = _tripped(stats, config)
        if tripped is None:
            return Outcome(m)
        return _open(m, now, tripped, reopens=0, config=config, draw=draw)
    if s is not BreakerState.HALF_OPEN:
        return Outcome(m, stale=s is BreakerState.OPEN)  # OPEN: late result; FORCED_OPEN/DISABLED: ignored
    if trigger is Trigger.CANCELLED:
        return Outcome(replace(m, probes_issued=max(m.probes_issued - 1, 0),
                               probes_in_flight=max(m.probes_in_flight - 1, 0)))
    if trigger is Trigger.FAILURE:
        return _open(m, now, Reason.PROBE_FAILED, reopens=m.reopens + 1, config=config, draw=draw)
    done = replace(m, probes_in_flight=max(m.probes_in_flight - 1, 0), probes_ok=m.probes_ok + 1,
                   probes_slow=m.probes_slow + (trigger is Trigger.SLOW_SUCCESS))
    if done.probes_ok < config.half_open_permits:
        return Outcome(done)
    if done.probes_slow and done.probes_slow / done.probes_ok >= config.slow_call_rate_threshold:
        return _open(m, now, Reason.PROBES_SLOW, reopens=m.reopens + 1, config=config, draw=draw)
    return _move(m, BreakerState.CLOSED, Reason.PROBES_SUCCEEDED, now, reset_window=True)
