"""The retry budget's token accounting on FakeClock."""

from __future__ import annotations

import pytest

from daz.config import RetryBudgetConfig
from daz.metrics import DazMetrics
from daz.retry.budget import RetryBudget
from daz.testing import FakeClock


def make(**kw: float | bool) -> tuple[RetryBudget, FakeClock, DazMetrics]:
    clock, metrics = FakeClock(), DazMetrics()
    config = RetryBudgetConfig(**{"ratio": 0.2, "min_per_second": 1.0, "window_seconds": 10.0, **kw})
    return RetryBudget(config, clock, metrics), clock, metrics


def drain(budget: RetryBudget, dependency: str = "db", limit: int = 10_000, *, settle: bool = True) -> int:
    """Take tokens until refused; by default each granted retry then fails (the dependency is down)."""
    granted = 0
    for _ in range(limit):
        if not budget.try_acquire(dependency):
            break
        if settle:
            budget.settle(dependency, 0.0, succeeded=False)  # when it was granted matters for refunds only
        granted += 1
    return granted


def test_floor_alone_allows_min_per_second_times_window() -> None:
    budget, _, metrics = make()
    assert drain(budget) == 10
    assert metrics.retry_budget_exhausted.labels(dependency="db")._value.get() == 1


def test_base_traffic_adds_ratio_tokens() -> None:
    budget, _, _ = make()
    budget.record_base("db", 100)
    assert drain(budget) == 10 + 20


def test_dependencies_have_separate_accounts() -> None:
    budget, _, _ = make()
    budget.record_base("db", 50)
    assert drain(budget, "db") == 20
    assert drain(budget, "cytube:lobby") == 10


async def test_tokens_come_back_as_the_window_slides() -> None:
    budget, clock, _ = make()
    assert drain(budget) == 10
    assert budget.retry_after("db") == pytest.approx(10.0)
    await clock.advance(5)
    assert not budget.try_acquire("db")
    assert budget.retry_after("db") == pytest.approx(5.0)
    await clock.advance(5)
    assert drain(budget) == 10


async def test_retries_over_a_long_outage_stay_within_ratio_of_base_plus_floor() -> None:
    budget, clock, _ = make()
    base = retries = 0
    seconds = 120
    for _ in range(seconds * 10):  # 100 ms steps: 20 first attempts and 500 retry wishes per second
        budget.record_base("db", 2)
        base += 2
        retries += drain(budget, limit=50)
        await clock.advance(0.1)
    windows = seconds / 10 + 1
    bound = 0.2 * base + 1.0 * 10 * windows
    print(f"\nbudget: base={base} retries granted={retries} bound={bound:.0f} wished={seconds * 500}")
    assert retries <= bound
    assert retries >= 0.2 * base  # the budget is a ceiling, not a trickle


def test_disabled_budget_never_refuses() -> None:
    budget, _, _ = make(enabled=False)
    assert drain(budget, limit=500) == 500


def test_snapshot_reports_each_dependency() -> None:
    budget, _, _ = make()
    budget.record_base("db", 10)
    drain(budget)
    (row,) = budget.snapshot()
    assert row == {"dependency": "db", "base": 10, "retries": 12, "allowance": 12.0, "granted_total": 12,
                   "refunded_total": 0, "refused_total": 1}


def test_refused_retries_queue_up_in_a_line_served_at_the_refill_rate_bounded_by_the_window() -> None:
    budget, _, _ = make()
    budget.record_base("db", 50)  # allowance 20 per 10 s: 2 per second
    drain(budget)
    waits = []
    for _ in range(40):
        assert not budget.try_acquire("db")
        waits.append(budget.retry_after("db"))
    assert waits == sorted(waits)
    # one place per refusal, 0.5 s apart, the head at the expiry of the oldest retries (10 s away)...
    assert waits[0] == pytest.approx(10.0)
    # ...and never further than one window, however long the line and however often refused again
    for _ in range(10_000):
        budget.try_acquire("db")
    assert budget.retry_after("db") == pytest.approx(10.0)


async def test_the_line_drains_while_time_passes_so_waits_do_not_compound() -> None:
    budget, clock, _ = make(min_per_second=5.0)  # allowance 50 per 10 s: 5 per second
    await clock.advance(10)
    drain(budget)
    await clock.advance(5)  # the failed retries' tokens come back in 5 s
    for _ in range(40):
        assert not budget.try_acquire("db")
    assert budget.retry_after("db") == pytest.approx(40 / 5.0)
    await clock.advance(3)  # 15 of the 40 places were served meanwhile
    assert not budget.try_acquire("db")
    assert budget.retry_after("db") == pytest.approx((40 - 15 + 1) / 5.0)


def test_a_successful_retry_gives_its_token_back_a_failed_one_does_not() -> None:
    budget, clock, _ = make()
    assert drain(budget, settle=False) == 10  # ten retries in flight: the allowance
    budget.settle("db", clock.monotonic(), succeeded=False)
    assert not budget.try_acquire("db")
    for _ in range(9):
        budget.settle("db", clock.monotonic(), succeeded=True)
    assert drain(budget) == 9
    (row,) = budget.snapshot()
    assert row["refunded_total"] == 9
    assert row["granted_total"] == 19


async def test_a_refund_after_the_grants_bucket_left_the_window_changes_nothing() -> None:
    budget, clock, _ = make()
    granted_at = clock.monotonic()
    assert drain(budget, settle=False) == 10
    await clock.advance(10)
    budget.settle("db", granted_at, succeeded=True)
    assert drain(budget) == 10  # the tokens came back by expiry; the refund added none
    (row,) = budget.snapshot()
    assert row["refunded_total"] == 0


def test_retries_in_flight_bring_the_head_of_the_line_to_one_bucket() -> None:
    budget, _, _ = make()
    drain(budget, settle=False)  # in flight: each frees its token when it succeeds
    assert not budget.try_acquire("db")
    assert budget.retry_after("db") == pytest.approx(1.0)


async def test_refunds_raise_the_rate_the_line_is_served_at() -> None:
    budget, clock, _ = make()
    await clock.advance(10)
    for _ in range(100):  # a healthy dependency: 100 successful retries in 0.5 s
        assert budget.try_acquire("db")
        budget.settle("db", clock.monotonic(), succeeded=True)
    await clock.advance(0.5)
    drain(budget)  # then the dependency fails again: 10 failed retries use the allowance
    for _ in range(400):
        assert not budget.try_acquire("db")
    # served at 100 refunds / 0.5 s = 200/s: 2 s, where the allowance's 1/s would give the 10 s cap
    assert budget.retry_after("db") == pytest.approx((1 + 400) / 200.0)  # drain's last ask was refused too
