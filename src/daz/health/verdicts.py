"""Pure health verdicts: figures and thresholds in, ``(status, output)`` out. No I/O, no clock.

Each function documents its rule; docs/observability.md lists the same rules for operators.
"""

from __future__ import annotations

from dataclasses import dataclass

from daz.health.types import HealthStatus, grade

Verdict = tuple[HealthStatus, str]

CONNECTING_STATES = frozenset({"discovering", "waiting", "connecting", "joining"})
OPEN_STATES = frozenset({"open", "forced_open"})


def room_state(
    state: str, *, degraded: bool = False, kicked_reason: str | None = None, reason: str | None = None
) -> Verdict:
    """READY passes (warns when degraded); on the way in, waiting for a token or parked behind the
    server's socket cap warns; anything else (stopped, kicked, backing off) fails. ``reason`` is the
    room's own account of its state."""
    why = f" ({reason})" if reason else ""
    if state == "ready":
        if degraded:
            return HealthStatus.WARN, "ready but degraded (flapping: reconnects are being slowed down)"
        return HealthStatus.PASS, ""
    if state in CONNECTING_STATES:
        return HealthStatus.WARN, f"not ready yet: {state}{why}"
    if state == "parked":
        return HealthStatus.WARN, f"parked: {reason or 'waiting for a socket slot'}"
    if state == "stopped":
        return HealthStatus.FAIL, f"stopped: {reason or 'no reason given'}"
    if state == "kicked" or kicked_reason:
        return HealthStatus.FAIL, f"kicked: {kicked_reason or 'no reason given'}"
    return HealthStatus.FAIL, f"not connected: {state}{why}"


@dataclass(frozen=True, slots=True)
class LivenessLimits:
    ping_interval: float
    ping_timeout: float
    margin: float

    @property
    def warn_after(self) -> float:
        """A PING is overdue: silence longer than one ping interval (plus margin)."""
        return self.ping_interval + self.margin

    @property
    def fail_after(self) -> float:
        """Engine.IO's own rule: no frame for pingInterval + pingTimeout means the peer is gone."""
        return self.ping_interval + self.ping_timeout + self.margin


def liveness(frame_age: float, limits: LivenessLimits) -> Verdict:
    """Seconds since the last server frame against the Engine.IO liveness rule."""
    if frame_age > limits.fail_after:
        return HealthStatus.FAIL, (
            f"no frame for {frame_age:.1f}s > pingInterval+pingTimeout+margin ({limits.fail_after:.0f}s)"
        )
    if frame_age > limits.warn_after:
        return HealthStatus.WARN, f"no frame for {frame_age:.1f}s: a server PING is overdue"
    return HealthStatus.PASS, ""


def media_updates(playing: bool, update_age: float, timeout: float) -> Verdict:
    """Only a playing (non-live, unpaused) item promises ``mediaUpdate`` every 5 s.

    An idle channel is silent for hours and that is healthy, so without playback this always
    passes. While playing: fail past ``timeout``, warn past half of it.
    """
    if not playing:
        return HealthStatus.PASS, ""
    if update_age >= timeout:
        return (HealthStatus.FAIL,
                f"no mediaUpdate for {update_age:.1f}s while media plays (timeout {timeout:.0f}s)")
    if update_age >= timeout / 2:
        return HealthStatus.WARN, f"no mediaUpdate for {update_age:.1f}s while media plays"
    return HealthStatus.PASS, ""


def flaps(count: int, threshold: int) -> Verdict:
    """Sessions lost before they were stable, in the flap window: 0 passes, ``threshold`` fails."""
    if count >= threshold:
        return HealthStatus.FAIL, f"{count} flaps in the window (threshold {threshold})"
    if count > 0:
        return HealthStatus.WARN, f"{count} flap(s) in the window"
    return HealthStatus.PASS, ""


def latency_ms(value: float, warn_ms: float, fail_ms: float, what: str) -> Verdict:
    status = grade(value, warn_ms, fail_ms)
    if status is HealthStatus.PASS:
        return status, ""
    limit = fail_ms if status is HealthStatus.FAIL else warn_ms
    return status, f"{what} took {value:.0f}ms (limit {limit:.0f}ms)"


def pool_saturation(in_use: int, waiting: int, max_size: int, warn: float, fail: float) -> Verdict:
    """In-use share of the maximum. Failing also needs callers waiting: a full pool nobody waits
    for is busy, not broken."""
    saturation = in_use / max_size if max_size > 0 else 1.0
    if saturation >= fail and waiting > 0:
        return HealthStatus.FAIL, f"pool exhausted: {in_use}/{max_size} in use, {waiting} waiting"
    if saturation >= warn:
        return HealthStatus.WARN, f"pool {saturation:.0%} in use ({in_use}/{max_size}), {waiting} waiting"
    return HealthStatus.PASS, ""


def pool_health(score_min: float | None, score_avg: float | None, threshold: float) -> Verdict:
    """Connection health scores (0..1): one below ``threshold`` warns; the mean below it fails."""
    if score_avg is not None and score_avg < threshold:
        return HealthStatus.FAIL, f"mean connection health {score_avg:.2f} < {threshold:.2f}"
    if score_min is not None and score_min < threshold:
        return HealthStatus.WARN, f"a connection's health is {score_min:.2f} < {threshold:.2f}"
    return HealthStatus.PASS, ""


def oldest_pending(age: float | None, warn_s: float, fail_s: float) -> Verdict:
    if age is None:
        return HealthStatus.PASS, ""
    status = grade(age, warn_s, fail_s)
    if status is HealthStatus.PASS:
        return status, ""
    return status, f"oldest pending item waits for {age:.0f}s"


def dead_letters(last_hour: int, warn: int, fail: int) -> Verdict:
    """Dead letters in the last hour; ``warn`` of 0 disables the warning."""
    if last_hour >= fail:
        return HealthStatus.FAIL, f"{last_hour} dead letters in the last hour"
    if warn > 0 and last_hour >= warn:
        return HealthStatus.WARN, f"{last_hour} dead letter(s) in the last hour"
    return HealthStatus.PASS, ""


def breaker(state: str, open_for: float, fail_after: float) -> Verdict:
    """CLOSED/DISABLED pass; HALF_OPEN warns; OPEN warns, and fails once open for ``fail_after``
    seconds (a dependency down that long is an outage, not a blip). Forced open is an operator's
    decision: it warns only."""
    if state == "half_open":
        return HealthStatus.WARN, "half-open: probing the dependency"
    if state == "forced_open":
        return HealthStatus.WARN, "forced open by an operator"
    if state == "open":
        if open_for >= fail_after:
            return HealthStatus.FAIL, f"open for {open_for:.0f}s"
        return HealthStatus.WARN, f"open for {open_for:.0f}s"
    return HealthStatus.PASS, ""


def spool(items: int, warn: int, capacity: int) -> Verdict:
    """Items waiting locally because the store was unreachable; full spool fails."""
    if items >= capacity:
        return HealthStatus.FAIL, f"spool full: {items} items (capacity {capacity})"
    if warn > 0 and items >= warn:
        return HealthStatus.WARN, f"{items} item(s) waiting in the spool"
    return HealthStatus.PASS, ""


def threshold(value: float, warn: float, fail: float, what: str, unit: str) -> Verdict:
    status = grade(value, warn, fail)
    if status is HealthStatus.PASS:
        return status, ""
    limit = fail if status is HealthStatus.FAIL else warn
    return status, f"{what} {value:.0f}{unit} (limit {limit:.0f}{unit})"
