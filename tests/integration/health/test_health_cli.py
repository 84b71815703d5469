"""``daz health`` in a subprocess against a running health server: table, JSON, exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

import pytest
from health_stack import health_stack, wait_for

from daz.config import HealthConfig
from daz.health.types import CheckResult, HealthStatus
from daz.testing import FakeClock

pytestmark = pytest.mark.slow  # each call starts a Python process (~2-3 s on a loaded machine)


@dataclass
class Switch:
    clock: FakeClock
    status: HealthStatus = HealthStatus.PASS
    name: str = "database"
    critical: bool = True

    async def run(self) -> list[CheckResult]:
        output = "" if self.status is HealthStatus.PASS else f"latency is {self.status.value}"
        return [CheckResult("database", "latency", self.status, 12.5, "ms", output, self.clock.now())]


async def daz_health(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daz", "health", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_exit_codes_follow_the_status() -> None:
    check = Switch(FakeClock())
    config = HealthConfig(port=0, interval_seconds=0.05)
    async with health_stack([check], config=config) as stack:
        for status, code in ((HealthStatus.PASS, 0), (HealthStatus.WARN, 1), (HealthStatus.FAIL, 2)):
            check.status = status
            def reached(wanted: HealthStatus = status) -> bool:
                report = stack.monitor.latest()
                return report is not None and report.status is wanted

            await wait_for(reached)
            rc, out, _ = await daz_health("--url", stack.url)
            assert rc == code, out
            assert "database:latency" in out
            assert "12.5 ms" in out
        rc, out, _ = await daz_health("--url", stack.url, "--json")
        assert rc == 2
        doc = json.loads(out)
        assert doc["checks"]["database:latency"][0]["output"] == "latency is fail"


async def test_unreachable_is_exit_3() -> None:
    rc, _, err = await daz_health("--url", "http://127.0.0.1:1", "--timeout", "2")
    assert rc == 3
    assert "cannot read" in err
