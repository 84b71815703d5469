"""CyTube's limits, as numbers a test can shrink: connection bucket, socket cap, guest window, floods.

The defaults are the values measured on a real CyTube 3.86 server (see
``../shared/cytube-protocol.md``, "Rate limits"); every field can be shrunk so a test runs fast while
keeping the rule. ``CytubeLimits.off()`` switches the limits off (for benchmarks that measure daz,
not the server's rules); a test that claims CyTube behaviour never uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class CytubeLimits:
    """The fake server's limits; defaults = a real CyTube 3.86 server.

    ``enabled=False`` turns off every limit below and the channel rules that refuse a client
    (bans, name rules): see ``off()``.
    """

    enabled: bool = True
    # per-IP connection token bucket (io/ioserver.js: TokenBucket(5, 0.1))
    bucket_size: int = 5
    refill_seconds: float = 10.0
    # concurrent sockets per IP (config io.ip-connection-limit)
    max_sockets_per_ip: int = 10
    # one successful guest login per IP per window (config guest-login-delay)
    guest_login_window_seconds: float = 60.0
    # chat flood limiter per user: burst, then a sustained rate; excess answered with `cooldown`
    chat_burst: int = 20
    chat_rate_per_second: float = 10.0
    chat_cooldown_ms: int = 100
    chat_quiet_reset_seconds: float = 2.0
    # queue add-rate limiter per user ("You are adding videos too quickly"); moderators get more
    queue_burst: int = 3
    queue_rate_per_second: float = 1.0
    mod_queue_burst: int = 10
    mod_queue_rate_per_second: float = 2.0
    # `usercount` is sent at most once per interval, leading and trailing (channel.js in 3.86)
    usercount_interval_seconds: float = 10.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name != "enabled" and (not isinstance(value, int | float) or value <= 0):
                raise ValueError(f"CytubeLimits.{spec.name} must be a positive number, got {value!r}")

    @classmethod
    def off(cls) -> CytubeLimits:
        """No limits at all: for benchmarks of daz itself, never for a test of CyTube behaviour."""
        return cls(enabled=False)

    @property
    def guest_window_text(self) -> str:
        """The window as CyTube prints it in its refusal (``60``, or ``0.5`` when shrunk)."""
        return f"{self.guest_login_window_seconds:g}"


class TokenBucket:
    """A bucket of ``size`` tokens refilled one per ``refill_seconds``; a refusal costs no token."""

    __slots__ = ("at", "refill_seconds", "size", "tokens")

    def __init__(self, size: float, refill_seconds: float) -> None:
        self.size = size
        self.refill_seconds = refill_seconds
        self.tokens = float(size)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.at) / self.refill_seconds)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FloodLimiter:
    """CyTube's per-user flood limiter (utilities.js ``newRateLimiter``), used for chat and for adds.
    Not a token bucket: ``burst`` events pass, then one per ``1/rate`` s counted from the last event
    that passed, and the burst comes back only after ``quiet_reset`` s without a passing event
    (a refused event does not count). So a pause shorter than that buys nothing: measured on 3.86,
    20 chat lines at once, 1 s of quiet, 10 more at once → 1 passes and 9 get ``cooldown``."""

    __slots__ = ("burst", "count", "last", "quiet_reset", "rate")

    def __init__(self, burst: int, rate_per_second: float, quiet_reset_seconds: float) -> None:
        self.burst = burst
        self.rate = rate_per_second
        self.quiet_reset = quiet_reset_seconds
        self.count = 0
        self.last: float | None = None

    def allow(self) -> bool:
        now = time.monotonic()
        if self.last is None or now - self.last > self.quiet_reset:
            self.count, self.last = 1, now  # cooled down: a fresh burst
            return True
        if self.count < self.burst:
            self.count += 1
            self.last = now
            return True
        if now - self.last < 1 / self.rate:
            return False
        self.last = now
        return True


class ConnectionGate:
    """Per-IP connection bucket, socket count and guest-login window (all forgotten on restart)."""

    def __init__(self, limits: CytubeLimits) -> None:
        self.limits = limits
        self._buckets: dict[str, TokenBucket] = {}
        self._sockets: dict[str, int] = {}
        self._guest_logins: dict[str, float] = {}

    def reset(self) -> None:
        self._buckets.clear()
        self._sockets.clear()
        self._guest_logins.clear()

    def admit(self, ip: str) -> bool:
        """Take a connection token for ``ip``; False = refuse with ``Rate limit exceeded``."""
        if not self.limits.enabled:
            return True
        bucket = self._buckets.get(ip)
        if bucket is None:
            bucket = self._buckets[ip] = TokenBucket(self.limits.bucket_size, self.limits.refill_seconds)
        return bucket.take()

    def opened(self, ip: str) -> bool:
        """Count an accepted socket; False = over the cap (the server kicks it)."""
        count = self._sockets.get(ip, 0) + 1
        self._sockets[ip] = count
        return not self.limits.enabled or count <= self.limits.max_sockets_per_ip

    def closed(self, ip: str) -> None:
        count = self._sockets.get(ip, 0) - 1
        if count > 0:
            self._sockets[ip] = count
        else:
            self._sockets.pop(ip, None)

    def guest_window_open(self, ip: str) -> bool:
        """True when ``ip`` may log in as a guest now (counted from its last SUCCESSFUL guest login)."""
        if not self.limits.enabled:
            return True
        last = self._guest_logins.get(ip)
        return last is None or time.monotonic() - last >= self.limits.guest_login_window_seconds

    def guest_logged_in(self, ip: str) -> float:
        """Start ``ip``'s guest window now; returns the ``time.monotonic()`` it starts from."""
        now = self._guest_logins[ip] = time.monotonic()
        return now

    def chat_limiter(self) -> FloodLimiter | None:
        if not self.limits.enabled:
            return None
        lim = self.limits
        return FloodLimiter(lim.chat_burst, lim.chat_rate_per_second, lim.chat_quiet_reset_seconds)

    def queue_limiter(self, rank: float) -> FloodLimiter | None:
        """The add-rate limiter for a user of ``rank`` (moderators, rank >= 2, get more)."""
        if not self.limits.enabled:
            return None
        lim = self.limits
        burst, rate = (
            (lim.mod_queue_burst, lim.mod_queue_rate_per_second)
            if rank >= 2
            else (lim.queue_burst, lim.queue_rate_per_second)
        )
        # CyTube's rate limiter forgets a burst after burst/rate seconds of quiet
        return FloodLimiter(burst, rate, burst / rate)
