"""Resilience primitives: circuit breakers, their registry, and the retry queue's attempt gate.

``pool.py`` (the connection pool manager) lives here too but is imported on its own.
"""

from daz.resilience.breaker import CallOutcome, CircuitBreaker, Permit, classify
from daz.resilience.gate import BreakerGate
from daz.resilience.machine import BreakerState, Trigger, break_duration, transition
from daz.resilience.registry import BreakerRegistry
from daz.resilience.window import CountWindow, TimeWindow, WindowStats

__all__ = [
    "BreakerGate",
    "BreakerRegistry",
    "BreakerState",
    "CallOutcome",
    "CircuitBreaker",
    "CountWindow",
    "Permit",
    "TimeWindow",
    "Trigger",
    "WindowStats",
    "break_duration",
    "classify",
    "transition",
]
