"""Backoff: the reconnect schedule with a fixed random seed, and property tests over every attempt number."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daz.backoff import (
    JitterStrategy,
    decorrelated_jitter,
    delay_for,
    exponential,
    full_jitter,
    proportional_backoff,
    proportional_bounds,
    queue_delay,
)

SEED = 42
CAP = 300.0


def _schedule(seed: int, attempts: int = 12) -> list[float]:
    rng = random.Random(seed)
    return [proportional_backoff(k, rng) for k in range(1, attempts + 1)]


def test_seed_schedule_attempts_1_to_12_with_fixed_seed() -> None:
    delays = _schedule(SEED)
    reference = random.Random(SEED)
    print("\nattempt  b(s)    low(s)   high(s)  drawn(s)   seed=42")
    for k, delay in enumerate(delays, start=1):
        b = 2.0 * 2 ** (k - 1)
        low, high = 0.75 * min(b, CAP), min(1.25 * b, CAP)
        print(f"{k:>7}  {b:>6.0f}  {low:>7.2f}  {high:>7.2f}  {delay:>8.3f}")
        assert low <= delay <= high
        # The draw is exactly one uniform() on the documented interval: reproducible from the seed.
        assert delay == pytest.approx(reference.uniform(low, high), abs=1e-12)
    assert _schedule(SEED) == delays  # same seed, same schedule
    assert _schedule(SEED + 1) != delays


def test_cap_keeps_jitter_wide() -> None:
    # From attempt 9 on (b = 512 s) the interval is [225, 300]: capped, yet still jittered.
    for attempt in (9, 10, 50, 10**6):
        assert proportional_bounds(attempt) == (225.0, 300.0)
    rng = random.Random(1)
    draws = {round(proportional_backoff(20, rng), 6) for _ in range(200)}
    assert len(draws) > 150
    assert min(draws) >= 225.0
    assert max(draws) <= 300.0


def test_attempt_8_straddles_the_cap() -> None:
    # b = 256: low 192, high min(320, 300) = 300.
    assert proportional_bounds(8) == (192.0, 300.0)


@settings(max_examples=300, deadline=None)
@given(attempt=st.integers(min_value=1, max_value=10**6), seed=st.integers(0, 2**32 - 1))
def test_proportional_backoff_bounds_for_every_attempt(attempt: int, seed: int) -> None:
    b = 2.0 * 2.0 ** min(attempt - 1, 1100) if attempt < 1000 else math.inf
    low, high = 0.75 * min(b, CAP), min(1.25 * b, CAP)
    delay = proportional_backoff(attempt, random.Random(seed))
    assert math.isfinite(delay)
    assert low - 1e-9 <= delay <= high + 1e-9
    assert delay <= CAP
    lo, hi = proportional_bounds(attempt)
    assert hi > lo  # jitter never vanishes, not even at the cap


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=10**6),
    base=st.floats(min_value=0.01, max_value=100),
    multiplier=st.floats(min_value=1.0, max_value=10),
    cap=st.floats(min_value=0.1, max_value=10_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_full_jitter_bounds(attempt: int, base: float, multiplier: float, cap: float, seed: int) -> None:
    delay = full_jitter(attempt, random.Random(seed), base=base, multiplier=multiplier, cap=cap)
    assert 0.0 <= delay <= min(cap, exponential(attempt, base, multiplier, cap)) + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    previous=st.floats(min_value=0.0, max_value=1e6),
    base=st.floats(min_value=0.01, max_value=100),
    cap=st.floats(min_value=100, max_value=10_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_decorrelated_jitter_bounds(previous: float, base: float, cap: float, seed: int) -> None:
    delay = decorrelated_jitter(previous, random.Random(seed), base=base, cap=cap)
    assert base - 1e-9 <= delay <= min(cap, max(base, previous * 3)) + 1e-9


def test_decorrelated_jitter_sequence_grows_then_caps() -> None:
    rng = random.Random(SEED)
    delay = 1.0
    seen = []
    for _ in range(40):
        delay = delay_for(JitterStrategy.DECORRELATED, 1, rng, base=1.0, multiplier=2, cap=60, previous=delay)
        seen.append(delay)
    assert all(1.0 <= d <= 60 for d in seen)
    assert max(seen) > 20  # it does grow away from the base


def test_queue_delay_first_retry_waits_initial() -> None:
    assert queue_delay(1, initial=5, multiplier=2, max_delay=300) == 5
    assert queue_delay(2, initial=5, multiplier=2, max_delay=300) == 10
    assert queue_delay(3, initial=2, multiplier=1.5, max_delay=60) == pytest.approx(4.5)
    assert queue_delay(10**6, initial=2, multiplier=1.5, max_delay=60) == 60


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=10**6),
    initial=st.floats(min_value=0.01, max_value=100),
    multiplier=st.floats(min_value=1.0, max_value=5),
    max_delay=st.floats(min_value=0.1, max_value=10_000),
    jitter=st.floats(min_value=0.0, max_value=0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_queue_delay_bounds(
    *,
    attempt: int, initial: float, multiplier: float, max_delay: float, jitter: float, seed: int
) -> None:
    plain = queue_delay(attempt, initial=initial, multiplier=multiplier, max_delay=max_delay)
    assert 0 < plain <= max_delay
    jittered = queue_delay(attempt, initial=initial, multiplier=multiplier, max_delay=max_delay,
                           jitter=jitter, rng=random.Random(seed))
    assert (1 - jitter) * plain - 1e-9 <= jittered <= max_delay + 1e-9


def test_exponential_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        exponential(0, 1, 2, 10)


def test_delay_for_dispatches_on_strategy() -> None:
    args = {"base": 2.0, "multiplier": 2.0, "cap": 300.0}
    assert delay_for(JitterStrategy.NONE, 3, random.Random(0), **args) == 8.0
    proportional = delay_for(JitterStrategy.PROPORTIONAL, 3, random.Random(0), **args)
    assert proportional == proportional_backoff(3, random.Random(0))
    full = delay_for(JitterStrategy.FULL, 3, random.Random(0), **args)
    assert 0 <= full <= 8.0
