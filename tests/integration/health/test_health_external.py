"""The external check against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from daz.health.external import ExternalCheck
from daz.health.types import HealthStatus
from daz.testing import FakeClock


@contextlib.asynccontextmanager
async def socketconfig_server(state: dict[str, int]) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        state["hits"] += 1
        if state["code"] != 200:
            return web.Response(status=state["code"])
        return web.json_response({"servers": [{"url": "http://127.0.0.1:1", "secure": False}]})

    app = web.Application()
    app.router.add_get("/socketconfig/{channel}.json", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_external_check_passes_fails_and_rate_limits_itself() -> None:
    state = {"hits": 0, "code": 200}
    clock = FakeClock()
    async with socketconfig_server(state) as url:
        check = ExternalCheck(url, "lobby", clock, interval=60, timeout=2)
        first = (await check.run())[0]
        assert (first.component, first.measurement) == ("external:cytube", "socketconfig")
        assert first.status is HealthStatus.PASS
        assert first.observed_unit == "ms"
        state["code"] = 500
        assert (await check.run())[0].status is HealthStatus.PASS  # within the interval: the last result
        assert state["hits"] == 1
        await clock.advance(60)
        failed = (await check.run())[0]
        assert failed.status is HealthStatus.FAIL
        assert "HTTP 500" in failed.output
        assert state["hits"] == 2
    await clock.advance(60)
    gone = (await check.run())[0]
    assert gone.status is HealthStatus.FAIL
    assert "ClientConnectorError" in gone.output or "Connect" in gone.output
    assert not check.critical
