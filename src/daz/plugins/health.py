"""The plugins health check, beside the host whose statuses it reads."""

from __future__ import annotations

from daz.clock import Clock
from daz.health.types import CheckResult, HealthStatus
from daz.plugins.states import PluginStatuses, plugin_verdict


class PluginsCheck:
    """Component ``plugin:<name>``, measurement ``state``; never critical (a broken plugin is
    reported, it does not make the bot unready)."""

    name = "plugins"
    critical = False

    def __init__(self, statuses: PluginStatuses, clock: Clock) -> None:
        self.statuses = statuses
        self.clock = clock

    async def run(self) -> list[CheckResult]:
        now_wall = self.clock.now()
        now = self.clock.monotonic()
        results: list[CheckResult] = []
        for name, status in self.statuses.items():
            verdict = HealthStatus(plugin_verdict(status, now))
            output = "" if verdict is HealthStatus.PASS else (
                f"{status.state.value}; restarts {status.restarts}; last error: {status.last_error}")
            results.append(CheckResult(f"plugin:{name}", "state", verdict, status.state.value, None,
                                       output, now_wall))
        return results
