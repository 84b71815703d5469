"""The ``retry``, ``breakers``, ``retry_budget`` and ``spool`` sections: how failed work is tried again."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from daz.config._base import NonNegativeSeconds, PositiveSeconds, _Model, merge_over_defaults


class RetryPolicyConfig(_Model):
    """One operation type's policy: attempts and exponential delays, plus timeout, jitter and breaker."""

    max_retries: Annotated[int, Field(ge=0)] = 3
    """Retries after the first failure before the operation is dead-lettered."""
    initial_delay_seconds: NonNegativeSeconds = 2.0
    """Wait before the first retry."""
    max_delay_seconds: PositiveSeconds = 60.0
    """Upper bound of the wait between retries."""
    backoff_multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Retry n waits initial_delay_seconds · backoff_multiplier^(n-1), capped."""
    timeout_seconds: PositiveSeconds = 30.0
    """Time one attempt may take before it counts as failed."""
    jitter: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Random spread ±jitter·delay so retries of many items do not line up."""
    breaker: str | None = None
    """Circuit breaker (a key of `breakers`) the attempts go through; none when unset."""


def _default_policies() -> dict[str, RetryPolicyConfig]:
    return {
        "cytube_command": RetryPolicyConfig(
            max_retries=5, initial_delay_seconds=5, max_delay_seconds=300, backoff_multiplier=2.0
        ),
        "sql_operation": RetryPolicyConfig(
            max_retries=3, initial_delay_seconds=2, max_delay_seconds=60, backoff_multiplier=1.5,
            breaker="database",
        ),
    }


class RetryConfig(_Model):
    enabled: bool = True
    """Run the persistent retry queue's workers."""
    poll_interval_seconds: PositiveSeconds = 10.0
    """How often idle workers look for due items (NOTIFY wake-ups make it faster on PostgreSQL)."""
    worker_count: Annotated[int, Field(ge=1, le=64)] = 3
    """Concurrent retry workers in this process."""
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 50
    """Due items one worker claims (leases) per store round-trip; a full batch wakes another idle worker."""
    lease_seconds: PositiveSeconds = 30.0
    """A claimed item is leased to its worker this long; if the worker dies, another may claim it once the
    lease has expired."""
    heartbeat_interval_seconds: PositiveSeconds = 10.0
    """While an attempt runs its lease is extended this often; must be shorter than lease_seconds."""
    retention_days: PositiveSeconds = 7.0
    """Completed items are kept this many days (fractions allowed) for `daz retry`, then deleted by the
    hourly cleanup; dead letters are kept until replayed or purged."""
    breaker_release_per_second: PositiveSeconds = 50.0
    """When a breaker closes, the items it deferred become due at most this many per second, so a
    recovering dependency is not hit by a stampede."""
    stats_interval_seconds: PositiveSeconds = 15.0
    """How often the queue refreshes daz_retry_queue_depth and the oldest-pending-age gauge."""
    cleanup_interval_seconds: PositiveSeconds = 3600.0
    """How often completed items older than retention_days are deleted."""
    no_handler_delay_seconds: PositiveSeconds = 10.0
    """An item nobody handles yet (no handler, no bus responder) is looked at again after this."""
    default_policy: RetryPolicyConfig = RetryPolicyConfig()
    retry_policies: dict[str, RetryPolicyConfig] = Field(default_factory=_default_policies)
    """Policy per operation type (`cytube_command`, `sql_operation`, a plugin's own); other types use
    default_policy. Entries are merged over the built-in ones field by field: giving only
    `{"sql_operation": {"max_delay_seconds": 90}}` keeps the other policies and sql_operation's other
    settings (multiplier 1.5, breaker `database`)."""

    @field_validator("retry_policies", mode="before")
    @classmethod
    def _merge_policies(cls, value: Any) -> Any:
        return merge_over_defaults(value, {k: v.model_dump() for k, v in _default_policies().items()})

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> RetryConfig:
        if self.heartbeat_interval_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_interval_seconds ({self.heartbeat_interval_seconds}) must be shorter than "
                f"lease_seconds ({self.lease_seconds})"
            )
        return self

    def policy_for(self, operation_type: str) -> RetryPolicyConfig:
        return self.retry_policies.get(operation_type, self.default_policy)


class BreakerConfig(_Model):
    """A circuit breaker: sliding window by count or time, failure-rate and slow-call thresholds."""

    window_type: Literal["count", "time"] = "count"
    """`count`: rates over the last `window_size` calls; `time`: over the last `window_seconds`."""
    window_size: Annotated[int, Field(ge=1)] = 20
    """Calls in a count window (must be at least `minimum_calls`)."""
    window_seconds: PositiveSeconds = 60.0
    """Length of a time window (kept in ten buckets)."""
    minimum_calls: Annotated[int, Field(ge=1)] = 10
    """No opening on rates until the window holds this many calls."""
    failure_rate_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Open when this share of the window's calls failed (retryable errors only)."""
    slow_call_rate_threshold: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Open when this share of the window's calls were slow (1.0: only when all were)."""
    slow_call_duration_seconds: PositiveSeconds = 5.0
    """A call taking at least this long is slow, whether it succeeded or not."""
    break_seconds: PositiveSeconds = 5.0
    """How long the first opening lasts before half-open probes."""
    break_multiplier: Annotated[float, Field(ge=1)] = 2.0
    """Each consecutive re-opening (a failed probe) multiplies the break by this."""
    max_break_seconds: PositiveSeconds = 300.0
    """Cap on the break; also the `retry_after` a forced-open breaker reports."""
    break_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Break drawn uniformly from ±this share of its nominal value (never beyond the cap)."""
    half_open_permits: Annotated[int, Field(ge=1)] = 3
    """Probe calls admitted while half-open; all must succeed to close, any failure re-opens."""

    @model_validator(mode="after")
    def _can_open(self) -> BreakerConfig:
        if self.window_type == "count" and self.minimum_calls > self.window_size:
            raise ValueError(
                f"minimum_calls ({self.minimum_calls}) must not exceed window_size ({self.window_size}): "
                "the breaker could never open"
            )
        if self.break_seconds > self.max_break_seconds:
            raise ValueError(
                f"break_seconds ({self.break_seconds}) must not exceed max_break_seconds "
                f"({self.max_break_seconds})"
            )
        return self


class RetryBudgetConfig(_Model):
    """Retries may add at most ``ratio`` of base traffic plus ``min_per_second``, per dependency."""

    enabled: bool = True
    """Off: retries are never deferred for budget reasons."""
    ratio: Annotated[float, Field(ge=0)] = 0.2
    """Retries per window may add this share of the window's first attempts (0.2 = +20 %)."""
    min_per_second: Annotated[float, Field(ge=0)] = 1.0
    """Floor: this many retries per second are allowed even without base traffic."""
    window_seconds: PositiveSeconds = 10.0
    """Sliding window (ten buckets) over which first attempts and retries are counted."""


class SpoolConfig(_Model):
    """Local durable spool for retries while the retry store is unreachable (docs/sql.md)."""

    path: Path = Path("daz-spool.sqlite")
    """SQLite file (WAL, synchronous=FULL) holding spooled retries."""
    max_items: Annotated[int, Field(ge=1)] = 100_000
    """Items the spool holds at most; beyond it scheduling fails with SpoolFull."""
    drain_interval_seconds: PositiveSeconds = 1.0
    """How often the drainer tries to move spooled items into the store."""
