"""Pure backoff delay functions. No I/O, no global randomness: pass a ``random.Random``.

All functions are safe for any attempt number (no float overflow): exponents are clamped before
they are raised, since ``2.0 ** 1_000_000`` overflows.
"""

from __future__ import annotations

import math
import random
from enum import StrEnum

RECONNECT_BASE_SECONDS = 2.0
RECONNECT_MULTIPLIER = 2.0
RECONNECT_JITTER_FRACTION = 0.25
RECONNECT_CAP_SECONDS = 300.0


class JitterStrategy(StrEnum):
    PROPORTIONAL = "proportional"  # ±25 % of the interval by default
    FULL = "full"  # AWS "full jitter": uniform [0, b]
    DECORRELATED = "decorrelated"  # AWS "decorrelated jitter"
    NONE = "none"


def exponential(attempt: int, base: float, multiplier: float, cap: float) -> float:
    """``base · multiplier^(attempt-1)`` capped at ``cap``; attempt 1 waits ``base``."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if base <= 0 or cap <= 0:
        return 0.0
    if multiplier <= 1.0:
        return min(base, cap)
    # Beyond this exponent the value exceeds the cap anyway; clamping avoids OverflowError.
    max_exponent = math.ceil(math.log(cap / base, multiplier)) + 1 if cap > base else 0
    exponent = min(attempt - 1, max(max_exponent, 0))
    return min(base * multiplier**exponent, cap)


def proportional_backoff(
    attempt: int,
    rng: random.Random,
    *,
    base: float = RECONNECT_BASE_SECONDS,
    multiplier: float = RECONNECT_MULTIPLIER,
    jitter: float = RECONNECT_JITTER_FRACTION,
    cap: float = RECONNECT_CAP_SECONDS,
) -> float:
    """The reconnect delay: uniform in [(1-j)·min(b,cap), min((1+j)·b, cap)].

    Capping after the jitter would make every client at the cap wait exactly ``cap`` seconds (the
    jitter vanishes and the herd returns together); here the interval stays wide at the cap.
    """
    raw = _uncapped(attempt, base, multiplier, cap * (1 + jitter) / max(1 - jitter, 1e-9))
    low = (1 - jitter) * min(raw, cap)
    high = min((1 + jitter) * raw, cap)
    if high <= low:
        return low
    return rng.uniform(low, high)


def proportional_bounds(
    attempt: int,
    *,
    base: float = RECONNECT_BASE_SECONDS,
    multiplier: float = RECONNECT_MULTIPLIER,
    jitter: float = RECONNECT_JITTER_FRACTION,
    cap: float = RECONNECT_CAP_SECONDS,
) -> tuple[float, float]:
    """The interval ``proportional_backoff`` draws from, for documentation and tests."""
    raw = _uncapped(attempt, base, multiplier, cap * (1 + jitter) / max(1 - jitter, 1e-9))
    return (1 - jitter) * min(raw, cap), max((1 - jitter) * min(raw, cap), min((1 + jitter) * raw, cap))


def full_jitter(attempt: int, rng: random.Random, *, base: float, multiplier: float, cap: float) -> float:
    """AWS full jitter: uniform in [0, min(cap, base·multiplier^(attempt-1))]."""
    return rng.uniform(0.0, exponential(attempt, base, multiplier, cap))


def decorrelated_jitter(previous: float, rng: random.Random, *, base: float, cap: float) -> float:
    """AWS decorrelated jitter: uniform in [base, previous·3], capped. Feed back the last delay."""
    high = max(base, previous * 3)
    return min(cap, rng.uniform(base, high))


def queue_delay(
    attempt: int,
    *,
    initial: float,
    multiplier: float,
    max_delay: float,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """The retry queue's delay before retry ``attempt`` (1 = first retry waits ``initial``).

    With ``jitter`` j > 0 the delay is drawn from [(1-j)·d, min((1+j)·d, max_delay)].
    """
    delay = exponential(attempt, initial, multiplier, max_delay)
    if jitter <= 0 or rng is None:
        return delay
    low = (1 - jitter) * delay
    high = min((1 + jitter) * delay, max_delay)
    return rng.uniform(low, high) if high > low else low


def delay_for(
    strategy: JitterStrategy,
    attempt: int,
    rng: random.Random,
    *,
    base: float,
    multiplier: float,
    cap: float,
    jitter: float = RECONNECT_JITTER_FRACTION,
    previous: float | None = None,
) -> float:
    """Dispatch on the configured strategy."""
    if strategy is JitterStrategy.PROPORTIONAL:
        return proportional_backoff(attempt, rng, base=base, multiplier=multiplier, jitter=jitter, cap=cap)
    if strategy is JitterStrategy.FULL:
        return full_jitter(attempt, rng, base=base, multiplier=multiplier, cap=cap)
    if strategy is JitterStrategy.DECORRELATED:
        return decorrelated_jitter(previous if previous is not None else base, rng, base=base, cap=cap)
    return exponential(attempt, base, multiplier, cap)


def _uncapped(attempt: int, base: float, multiplier: float, ceiling: float) -> float:
    """``base·multiplier^(attempt-1)``, clamped at ``ceiling`` (which is above any cap we apply)."""
    return exponential(attempt, base, multiplier, max(ceiling, base))
