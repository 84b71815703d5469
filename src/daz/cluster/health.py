"""Health check for scale-out: is this instance still able to prove its leases?"""

from __future__ import annotations

from daz.clock import Clock
from daz.cluster.coordinator import ClusterCoordinator
from daz.health.types import CheckResult, HealthStatus


class ClusterCheck:
    """Component ``cluster``: ``lease_renewal`` age (warn past one renew interval, fail past the
    lease: this instance can no longer hold rooms) and ``rooms_held``. Not critical: an instance
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
        return [
            CheckResult("cluster", "lease_renewal", status, None if age is None else round(age, 2), "s",
                        output, now),
            CheckResult("cluster", "rooms_held", HealthStatus.PASS, held, None,
                        f"{held} of {len(self.coordinator.rooms)} rooms", now),
        ]
