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


def drain(budget: RetryBudget, dependency: str = "db", limit: int = 10_000) -> int:
    granted = 0
    for _ in range(limit):
        if not budget.try_acquire(dependency):
            break
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
                   "refused_total": 1}


def test_refused_retries_queue_up_in_a_line_served_at_the_refill_rate() -> None:
    budget, _, _ = make()
    budget.record_base("db", 50)  # allowance 20 per 10 s: 2 per second
    drain(budget)
    waits = []
    for _ in range(40):
        assert not budget.try_acquire("db")
        waits.append(budget.retry_after("db"))
    assert waits == sorted(waits)
    assert waits[-1] == pytest.approx(40 / 2.0 + 0.5)
    for _ in range(10_000):
        budget.try_acquire("db")
    assert budget.retry_after("db") <= 300.0
