"""The pure retry decision: delays, the max_retries boundary, non-retryable errors, jitter bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from daz.config import RetryConfig, RetryPolicyConfig
from daz.errors import DazError, StoreUnavailable
from daz.retry import DeadLetter, Retry, RetryPolicy, decide, policy_for
from daz.store.base import QueueItem

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(attempt: int, max_retries: int = 5) -> QueueItem:
    return QueueItem(
        id=1, correlation_id="c", idempotency_key=None, operation_type="cytube_command", target=None,
        event_type=None, payload={}, status="processing", priority=0, attempt=attempt,
        max_retries=max_retries, retry_after=NOW, lease_until=None, lease_owner=None, fence=1,
        timeout_seconds=30, last_error=None, created_at=NOW, updated_at=NOW,
    )


def seed_policy(jitter: float = 0.0) -> RetryPolicy:
    cfg = RetryConfig().retry_policies["cytube_command"]
    return RetryPolicy.from_config("cytube_command", cfg.model_copy(update={"jitter": jitter}))


def test_seed_examples_are_the_default_policies() -> None:
    config = RetryConfig()
    cmd, sql = policy_for(config, "cytube_command"), policy_for(config, "sql_operation")
    assert (cmd.max_retries, cmd.initial_delay_seconds, cmd.max_delay_seconds, cmd.backoff_multiplier) == (
        5, 5, 300, 2.0)
    assert (sql.max_retries, sql.initial_delay_seconds, sql.max_delay_seconds, sql.backoff_multiplier) == (
        3, 2, 60, 1.5)
    other = policy_for(config, "anything_else")
    assert other.max_retries == config.default_policy.max_retries


def test_first_retry_waits_initial_then_grows_and_caps() -> None:
    policy = seed_policy()
    assert [policy.delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]


@pytest.mark.parametrize(("failed_before", "expected_delay"), [(0, 10.0), (1, 20.0), (3, 80.0)])
def test_retry_after_failure_uses_next_retry_delay(failed_before: int, expected_delay: float) -> None:
    decision = decide(item(failed_before), StoreUnavailable("db down"), seed_policy(), NOW)
    assert isinstance(decision, Retry)
    assert decision.delay_seconds == expected_delay
    assert decision.at == NOW + timedelta(seconds=expected_delay)
    assert decision.error == "db down"


def test_dead_letter_exactly_after_max_retries_attempts() -> None:
    policy = seed_policy()
    assert isinstance(decide(item(3, max_retries=5), RuntimeError("x"), policy, NOW), Retry)
    last = decide(item(4, max_retries=5), RuntimeError("x"), policy, NOW)
    assert isinstance(last, DeadLetter)
    assert last.reason == "gave up after 5 attempt(s): RuntimeError: x"


def test_non_retryable_error_goes_straight_to_dead_letter() -> None:
    decision = decide(item(0), DazError("bad payload", retryable=False), seed_policy(), NOW)
    assert decision == DeadLetter("non-retryable: bad payload")


def test_unknown_exceptions_are_retried_and_described_with_their_type() -> None:
    decision = decide(item(0), KeyError("room"), seed_policy(), NOW)
    assert isinstance(decision, Retry)
    assert decision.error == "KeyError: 'room'"


def test_jitter_stays_within_bounds_and_below_cap() -> None:
    rng = random.Random(7)
    policy = seed_policy(jitter=0.25)
    for n in range(1, 12):
        base = seed_policy().delay(n)
        for _ in range(50):
            d = policy.delay(n, rng)
            assert 0.75 * base <= d <= min(1.25 * base, 300)
    delays = {round(policy.delay(2, rng), 6) for _ in range(20)}
    assert len(delays) > 10  # really spread, not one value


def test_zero_initial_delay_retries_immediately() -> None:
    policy = RetryPolicy.from_config("x", RetryPolicyConfig(initial_delay_seconds=0, jitter=0))
    decision = decide(item(0), RuntimeError("x"), policy, NOW)
    assert isinstance(decision, Retry)
    assert decision.at == NOW
