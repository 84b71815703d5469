"""External availability: can the CyTube site's ``/socketconfig/<channel>.json`` be fetched?

Not critical: when cytu.be is down the rooms fail their own checks; this one tells an operator
whether the problem is on the far side. Runs at most every ``interval`` seconds (the monitor's
5 s would hammer a public site) and reports its last result in between.
"""

from __future__ import annotations

import json

import aiohttp

from daz.clock import Clock
from daz.health.checks import ResultBuilder, describe_error
from daz.health.types import CheckResult, HealthStatus

SOCKETCONFIG_PATH = "/socketconfig/{channel}.json"


class ExternalCheck:
    """Component ``external:cytube``, measurement ``socketconfig`` (latency in ms)."""

    name = "external:cytube"

    def __init__(
        self,
        base_url: str,
        channel: str,
        clock: Clock,
        *,
        interval: float = 60.0,
        timeout: float = 5.0,
        critical: bool = False,
    ) -> None:
        self.url = base_url.rstrip("/") + SOCKETCONFIG_PATH.format(channel=channel)
        self._clock = clock
        self._interval = interval
        self._timeout = timeout
        self.critical = critical
        self._last: list[CheckResult] | None = None
        self._last_at = 0.0

    async def run(self) -> list[CheckResult]:
        now = self._clock.monotonic()
        if self._last is not None and now - self._last_at < self._interval:
            return self._last
        out = ResultBuilder(self._clock)
        started = self._clock.monotonic()
        try:
            servers = await self._fetch()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            failed = (HealthStatus.FAIL, f"{self.url}: {describe_error(exc)}")
            out.add(self.name, "socketconfig", failed, None, "ms")
        else:
            elapsed_ms = round((self._clock.monotonic() - started) * 1000, 1)
            if servers:
                out.add(self.name, "socketconfig", (HealthStatus.PASS, ""), elapsed_ms, "ms")
            else:
                out.add(self.name, "socketconfig", (HealthStatus.FAIL, f"{self.url}: no servers listed"),
                        elapsed_ms, "ms")
        self._last, self._last_at = out.items, now
        return out.items

    async def _fetch(self) -> int:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self.url) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            try:
                body = json.loads(await resp.text())
            except json.JSONDecodeError as exc:
                raise ValueError("response is not JSON") from exc
        servers = body.get("servers") if isinstance(body, dict) else None
        return len(servers) if isinstance(servers, list) else 0
