"""Health check for scale-out: is this instance still able to prove its leases?"""

from __future__ import annotations

from daz.clock import Clock
from daz.cluster.coordinator import ClusterCoordinator
from daz.health.types import CheckResult, HealthStatus


class ClusterCheck:
    """Component ``cluster``: ``lease_renewal`` age (warn past one renew interval, fail past the
    lease: this instance can no longer hold rooms), ``rooms_held`` and ``rooms_waiting`` (warn: rooms no
    live instance has a socket for on their server, each with the reason). Not critical: an instance
    holding no room is still a healthy standby."""

    name = "cluster"
    critical = False

    def __init__(self, coordinator: ClusterCoordinator, clock: Clock) -> None:
        self.coordinator = coordinator
        self.clock = clock

    async def run(self) -> list[CheckResult]:
        now = self.clock.now()
        cfg = self.coordinator.config
        last = self.coordinator.last_tick_ok
        age = None if last is None else self.clock.monotonic() - last
        if age is None or age > cfg.lease_seconds:
            status, output = HealthStatus.FAIL, "cannot renew leases (database unreachable?): rooms left"
        elif age > cfg.renew_interval_seconds * 2:
            status, output = HealthStatus.WARN, "lease renewal is late"
        else:
            status, output = HealthStatus.PASS, ""
        held = len(self.coordinator.held)
        waiting = self.coordinator.waiting
        # Rooms no live instance has a socket for: say which and why (start another instance).
        waiting_result = CheckResult(
            "cluster", "rooms_waiting", HealthStatus.WARN if waiting else HealthStatus.PASS, len(waiting),
            None, "; ".join(f"{room}: {why}" for room, why in sorted(waiting.items())), now)
        return [
            CheckResult("cluster", "lease_renewal", status, None if age is None else round(age, 2), "s",
                        output, now),
            CheckResult("cluster", "rooms_held", HealthStatus.PASS, held, None,
                        f"{held} of {len(self.coordinator.rooms)} rooms", now),
            waiting_result,
        ]
