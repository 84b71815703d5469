"""The persistent retry queue: policies, the pure retry decision, leased workers, the service."""

from daz.retry.policy import DeadLetter, Retry, RetryPolicy, decide, policy_for
from daz.retry.queue import RetryQueue
from daz.retry.worker import AttemptGate, AttemptTimeout, Handler

__all__ = [
    "AttemptGate",
    "AttemptTimeout",
    "DeadLetter",
    "Handler",
    "Retry",
    "RetryPolicy",
    "RetryQueue",
    "decide",
    "policy_for",
]
