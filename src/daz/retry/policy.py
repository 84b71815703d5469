"""Retry policies and the pure decision taken after a failed attempt.

``decide`` looks only at the item, the error, the policy and the time: no I/O, no globals. The
delay before retry n is ``initial · multiplier^(n-1)`` capped at ``max_delay`` (the first retry
waits ``initial``), with the policy's proportional jitter drawn from the injected ``rng``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from daz.backoff import queue_delay
from daz.config import RetryConfig, RetryPolicyConfig
from daz.errors import DazError
from daz.store.base import QueueItem

ERROR_TEXT_MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    operation_type: str
    max_retries: int
    initial_delay_seconds: float
    max_delay_seconds: float
    backoff_multiplier: float
    timeout_seconds: float
    jitter: float
    breaker: str | None = None

    @classmethod
    def from_config(cls, operation_type: str, cfg: RetryPolicyConfig) -> RetryPolicy:
        return cls(
            operation_type=operation_type,
            max_retries=cfg.max_retries,
            initial_delay_seconds=cfg.initial_delay_seconds,
            max_delay_seconds=cfg.max_delay_seconds,
            backoff_multiplier=cfg.backoff_multiplier,
            timeout_seconds=cfg.timeout_seconds,
            jitter=cfg.jitter,
            breaker=cfg.breaker,
        )

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        return queue_delay(
            retry_number,
            initial=self.initial_delay_seconds,
            multiplier=self.backoff_multiplier,
            max_delay=self.max_delay_seconds,
            jitter=self.jitter,
            rng=rng,
        )


def policy_for(config: RetryConfig, operation_type: str) -> RetryPolicy:
    return RetryPolicy.from_config(operation_type, config.policy_for(operation_type))


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    delay_seconds: float
    error: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str


Decision = Retry | DeadLetter


def is_retryable(error: BaseException) -> bool:
    """A ``DazError`` says so itself; timeouts are retryable; anything unexpected is retried too,
    because dead-lettering on an unknown error would lose work a later attempt could do."""
    if isinstance(error, DazError):
        return error.retryable
    return True


def describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if not isinstance(error, DazError):
        text = f"{type(error).__name__}: {text}"
    return text[:ERROR_TEXT_MAX_CHARS]


def decide(
    item: QueueItem,
    error: BaseException,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """What to do after ``item``'s attempt failed with ``error``.

    ``item.attempt`` counts the attempts that failed before this one; the row's ``max_retries``
    (fixed when the item was scheduled) is how many attempts the queue may make in total.
    """
    text = describe(error)
    if not is_retryable(error):
        return DeadLetter(f"non-retryable: {text}")
    failed = item.attempt + 1
    if failed >= item.max_retries:
        return DeadLetter(f"gave up after {failed} attempt(s): {text}")
    delay = policy.delay(failed + 1, rng)
    return Retry(at=now + timedelta(seconds=delay), delay_seconds=delay, error=text)
