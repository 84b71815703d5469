"""Every row of the breaker's transition table, on the pure function (no clock object, no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from daz.config import BreakerConfig
from daz.resilience.machine import (
    OPERATOR_TRIGGERS,
    TRANSITION_TABLE,
    BreakerState,
    Machine,
    Reason,
    Row,
    Trigger,
    break_duration,
    transition,
)
from daz.resilience.window import WindowStats

S = BreakerState
CONFIG = BreakerConfig(
    minimum_calls=4, failure_rate_threshold=0.5, slow_call_rate_threshold=0.5, half_open_permits=2,
    break_seconds=10, break_multiplier=2, max_break_seconds=100, break_jitter=0.1,
)


@dataclass
class Case:
    machine: Machine
    now: float = 100.0
    stats: WindowStats = field(default_factory=WindowStats)
    epoch: int | None = None
    config: BreakerConfig = CONFIG
    check: Callable[[Any], None] | None = None


def closed() -> Machine:
    return Machine(S.CLOSED, since=0.0, epoch=3)


def opened(until: float = 110.0) -> Machine:
    return Machine(S.OPEN, since=90.0, epoch=4, open_until=until, reopens=1)


def half(issued: int = 1, in_flight: int = 1, ok: int = 0, slow: int = 0) -> Machine:
    return Machine(S.HALF_OPEN, since=95.0, epoch=5, reopens=1, probes_issued=issued,
                   probes_in_flight=in_flight, probes_ok=ok, probes_slow=slow)


def expect(**fields: Any) -> Callable[[Any], None]:
    def check(outcome: Any) -> None:
        for key, value in fields.items():
            actual = getattr(outcome, key) if hasattr(outcome, key) else getattr(outcome.machine, key)
            assert actual == value, f"{key}: {actual!r} != {value!r}"
    return check


RELAXED_SLOW = CONFIG.model_copy(update={"slow_call_rate_threshold": 1.0})

CASES: dict[tuple[S, Trigger, str], Case] = {
    (S.CLOSED, Trigger.ACQUIRE, "always (admitted)"): Case(closed(), check=expect(admitted=True)),
    (S.CLOSED, Trigger.SUCCESS, "rates below thresholds or fewer than minimum_calls"):
        Case(closed(), stats=WindowStats(4, 1, 1), epoch=3),
    (S.CLOSED, Trigger.SLOW_SUCCESS, "rates below thresholds or fewer than minimum_calls"):
        Case(closed(), stats=WindowStats(3, 0, 3), epoch=3),
    (S.CLOSED, Trigger.SLOW_SUCCESS, ">= minimum_calls and slow rate >= slow_call_rate_threshold"):
        Case(closed(), stats=WindowStats(4, 0, 2), epoch=3, check=expect(reopens=0, epoch=4)),
    (S.CLOSED, Trigger.FAILURE, "rates below thresholds or fewer than minimum_calls"):
        Case(closed(), stats=WindowStats(3, 3, 0), epoch=3),
    (S.CLOSED, Trigger.FAILURE, ">= minimum_calls and failure rate >= failure_rate_threshold"):
        Case(closed(), stats=WindowStats(4, 2, 0), epoch=3, check=expect(reopens=0)),
    (S.CLOSED, Trigger.FAILURE, ">= minimum_calls, failure rate below, slow rate >= threshold"):
        Case(closed(), stats=WindowStats(4, 1, 2), epoch=3),
    (S.CLOSED, Trigger.CANCELLED, "always (not counted)"):
        Case(closed(), stats=WindowStats(4, 4, 4), epoch=3),
    (S.OPEN, Trigger.ACQUIRE, "break not elapsed (refused, retry_after = time left)"):
        Case(opened(until=110.0), now=104.0, check=expect(admitted=False, retry_after=6.0)),
    (S.OPEN, Trigger.ACQUIRE, "break elapsed (admitted as the first probe)"):
        Case(opened(until=110.0), now=110.0,
             check=expect(admitted=True, probes_issued=1, probes_in_flight=1, reopens=1)),
    (S.OPEN, Trigger.SUCCESS, "late result of a call admitted before opening (ignored)"):
        Case(opened(), epoch=3, check=expect(stale=True)),
    (S.OPEN, Trigger.SLOW_SUCCESS, "late result (ignored)"):
        Case(opened(), epoch=3, check=expect(stale=True)),
    (S.OPEN, Trigger.FAILURE, "late result (ignored)"):
        Case(opened(), epoch=3, stats=WindowStats(10, 10, 10), check=expect(stale=True, open_until=110.0)),
    (S.OPEN, Trigger.CANCELLED, "late result (ignored)"): Case(opened(), epoch=3),
    (S.HALF_OPEN, Trigger.ACQUIRE, "probes issued < half_open_permits (admitted)"):
        Case(half(1, 1), check=expect(admitted=True, probes_issued=2, probes_in_flight=2)),
    (S.HALF_OPEN, Trigger.ACQUIRE, "all permits issued (refused)"):
        Case(half(2, 2), check=expect(admitted=False, probes_issued=2)),
    (S.HALF_OPEN, Trigger.SUCCESS, "probes still outstanding"):
        Case(half(2, 2), epoch=5, check=expect(probes_ok=1, probes_in_flight=1)),
    (S.HALF_OPEN, Trigger.SUCCESS, "last probe done, slow share below slow_call_rate_threshold"):
        Case(half(2, 1, ok=1), epoch=5, check=expect(reopens=0, reset_window=True)),
    (S.HALF_OPEN, Trigger.SUCCESS, "last probe done, slow share >= slow_call_rate_threshold"):
        Case(half(2, 1, ok=1, slow=1), epoch=5, check=expect(reopens=2)),
    (S.HALF_OPEN, Trigger.SLOW_SUCCESS, "probes still outstanding"):
        Case(half(2, 2), epoch=5, check=expect(probes_slow=1)),
    (S.HALF_OPEN, Trigger.SLOW_SUCCESS, "last probe done, slow share below slow_call_rate_threshold"):
        Case(half(2, 1, ok=1), epoch=5, config=RELAXED_SLOW),
    (S.HALF_OPEN, Trigger.SLOW_SUCCESS, "last probe done, slow share >= slow_call_rate_threshold"):
        Case(half(2, 1, ok=1), epoch=5),
    (S.HALF_OPEN, Trigger.FAILURE, "any probe fails (break grows)"):
        Case(half(2, 2), epoch=5, check=expect(reopens=2)),
    (S.HALF_OPEN, Trigger.CANCELLED, "the permit is handed back"):
        Case(half(2, 2), epoch=5, check=expect(probes_issued=1, probes_in_flight=1)),
    (S.FORCED_OPEN, Trigger.ACQUIRE, "always (refused until an operator acts)"):
        Case(Machine(S.FORCED_OPEN, epoch=7), check=expect(admitted=False, retry_after=100.0)),
    (S.DISABLED, Trigger.ACQUIRE, "always (admitted, never trips)"):
        Case(Machine(S.DISABLED, epoch=7), check=expect(admitted=True)),
}
for _state in (S.FORCED_OPEN, S.DISABLED):
    for _trigger in (Trigger.SUCCESS, Trigger.SLOW_SUCCESS, Trigger.FAILURE, Trigger.CANCELLED):
        CASES[(_state, _trigger, "ignored")] = Case(Machine(_state, epoch=7), epoch=7,
                                                    stats=WindowStats(10, 10, 10))
_SAMPLE = {S.CLOSED: closed(), S.OPEN: opened(), S.HALF_OPEN: half(), S.FORCED_OPEN: Machine(S.FORCED_OPEN),
           S.DISABLED: Machine(S.DISABLED)}
for _state, _machine in _SAMPLE.items():
    for _row in TRANSITION_TABLE:
        if _row.source is _state and _row.trigger in OPERATOR_TRIGGERS:
            CASES[(_state, _row.trigger, _row.condition)] = Case(
                _machine, check=expect(epoch=_machine.epoch + 1, probes_issued=0, reopens=0)
            )


def test_every_row_has_a_case_and_every_case_a_row() -> None:
    rows = {(r.source, r.trigger, r.condition) for r in TRANSITION_TABLE}
    assert rows == set(CASES)
    assert len(rows) == len(TRANSITION_TABLE), "duplicate rows in the table"


def test_the_table_covers_every_state_and_trigger() -> None:
    pairs = {(r.source, r.trigger) for r in TRANSITION_TABLE}
    assert pairs == {(s, t) for s in BreakerState for t in Trigger}


@pytest.mark.parametrize("row", TRANSITION_TABLE, ids=lambda r: f"{r.source}-{r.trigger}-{r.condition}")
def test_row(row: Row) -> None:
    case = CASES[(row.source, row.trigger, row.condition)]
    outcome = transition(case.machine, row.trigger, now=case.now, config=case.config, stats=case.stats,
                         epoch=case.epoch, draw=0.5)
    assert outcome.machine.state is row.target
    if row.reason is None:
        assert outcome.change is None
        if row.trigger is not Trigger.ACQUIRE and row.source is not S.HALF_OPEN:
            assert outcome.machine == case.machine
    else:
        assert outcome.change is not None
        assert (outcome.change.source, outcome.change.target, outcome.change.reason) == (
            row.source, row.target, row.reason)
    if row.target is S.OPEN and row.reason is not None:
        expected = break_duration(outcome.machine.reopens, case.config, 0.5)
        assert outcome.machine.open_until == pytest.approx(case.now + expected)
    if case.check is not None:
        case.check(outcome)


def test_a_result_from_an_earlier_epoch_never_counts_as_a_probe() -> None:
    probing = Machine(S.HALF_OPEN, epoch=5, probes_issued=2, probes_in_flight=2, probes_ok=1)
    outcome = transition(probing, Trigger.SUCCESS, now=0, config=CONFIG, stats=WindowStats(), epoch=3)
    assert outcome.stale
    assert outcome.machine == probing
    failed = transition(probing, Trigger.FAILURE, now=0, config=CONFIG, stats=WindowStats(), epoch=2)
    assert failed.machine.state is S.HALF_OPEN


@pytest.mark.parametrize(("reopens", "expected"), [(0, 10), (1, 20), (2, 40), (3, 80), (4, 100), (60, 100)])
def test_break_duration_grows_with_reopens_up_to_the_cap(reopens: int, expected: float) -> None:
    no_jitter = CONFIG.model_copy(update={"break_jitter": 0.0})
    assert break_duration(reopens, no_jitter, 0.9) == pytest.approx(expected)


def test_break_duration_jitter_spans_the_configured_band_and_never_passes_the_cap() -> None:
    assert break_duration(1, CONFIG, 0.0) == pytest.approx(18.0)
    assert break_duration(1, CONFIG, 0.999999) == pytest.approx(22.0, rel=1e-5)
    at_cap = [break_duration(10, CONFIG, d / 10) for d in range(10)]
    assert min(at_cap) == pytest.approx(90.0)
    assert max(at_cap) <= 100.0
    assert len(set(at_cap)) == 10, "jitter must stay wide at the cap"


def test_consecutive_reopens_grow_the_break_and_a_close_forgets_them() -> None:
    m = Machine(S.CLOSED)
    m = transition(m, Trigger.FAILURE, now=0, config=CONFIG, stats=WindowStats(4, 4, 0), epoch=0,
                   draw=0.5).machine
    breaks = []
    now = 0.0
    for _ in range(4):
        breaks.append(m.open_until - now)
        now = m.open_until
        m = transition(m, Trigger.ACQUIRE, now=now, config=CONFIG, stats=WindowStats()).machine
        assert m.state is S.HALF_OPEN
        m = transition(m, Trigger.FAILURE, now=now, config=CONFIG, stats=WindowStats(), epoch=m.epoch,
                       draw=0.5).machine
    assert breaks == pytest.approx([10, 20, 40, 80])
    now = m.open_until
    for _ in range(CONFIG.half_open_permits):
        m = transition(m, Trigger.ACQUIRE, now=now, config=CONFIG, stats=WindowStats()).machine
    for _ in range(CONFIG.half_open_permits):
        m = transition(m, Trigger.SUCCESS, now=now, config=CONFIG, stats=WindowStats(), epoch=m.epoch).machine
    assert m.state is S.CLOSED
    m = transition(m, Trigger.FAILURE, now=now, config=CONFIG, stats=WindowStats(4, 4, 0), epoch=m.epoch,
                   draw=0.5).machine
    assert m.open_until - now == pytest.approx(10)


def test_failure_rate_is_checked_before_slow_rate() -> None:
    out = transition(closed(), Trigger.FAILURE, now=0, config=CONFIG, stats=WindowStats(4, 2, 4), epoch=3)
    assert out.change is not None
    assert out.change.reason is Reason.FAILURE_RATE


def test_docs_list_every_row_of_the_table() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "resilience.md").read_text(encoding="utf-8")
    for r in TRANSITION_TABLE:
        line = f"| {r.source.value} | {r.trigger.value} | {r.condition} | {r.target.value} | " \
               f"{r.reason.value if r.reason else '—'} |"
        assert line in page, f"docs/resilience.md lacks: {line}"
