"""The health HTTP server for real on 127.0.0.1: endpoints, status codes, database outage, admin."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import asyncpg
import pytest
from health_stack import health_stack, wait_for
from pydantic import SecretStr

from daz.config import HealthConfig, HealthThresholds
from daz.health.checks import DatabaseCheck
from daz.health.process import ProcessCheck
from daz.health.report import HEALTH_JSON, draft_violations
from daz.health.sources import DeadLetterView, StatusSources
from daz.health.types import Check
from daz.testing import FakeClock

TOKEN = "s3cret-admin-token"


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", "").split(";")[0], await resp.text()


class SwitchableDb:
    """``SELECT 1`` against a real PostgreSQL, or against a port where nothing listens."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.down = False

    async def ping(self) -> None:
        dsn = "postgresql://root@127.0.0.1:1/test" if self.down else self.dsn
        conn = await asyncpg.connect(dsn, timeout=2)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()


@pytest.mark.postgres
async def test_livez_stays_up_while_the_database_is_down(pg_dsn: str) -> None:
    from daz.clock import SystemClock

    db = SwitchableDb(pg_dsn)
    clock = SystemClock()
    relaxed = HealthThresholds(db_latency_warn_ms=2000, db_latency_fail_ms=5000)
    checks: list[Check] = [DatabaseCheck(db.ping, clock, relaxed),
                           ProcessCheck(clock, HealthThresholds(), None)]
    async with health_stack(checks) as stack, aiohttp.ClientSession() as http:
        await wait_for(lambda: stack.monitor.latest() is not None)
        code, ctype, body = await get(http, stack.url + "/health")
        assert (code, ctype) == (200, HEALTH_JSON)
        doc = json.loads(body)
        assert draft_violations(doc) == []
        assert doc["checks"]["database:latency"][0]["status"] == "pass"
        assert (await get(http, stack.url + "/readyz"))[0] == 200

        db.down = True
        await wait_for(lambda: (r := stack.monitor.latest()) is not None and r.status.value == "fail")
        code, _, body = await get(http, stack.url + "/livez")
        assert code == 200
        assert json.loads(body)["status"] == "pass"
        code, _, body = await get(http, stack.url + "/readyz")
        assert code == 503
        assert json.loads(body)["failing"][0]["component"] == "database"
        code, ctype, body = await get(http, stack.url + "/health")
        doc = json.loads(body)
        assert (code, ctype, doc["status"]) == (503, HEALTH_JSON, "fail")
        assert draft_violations(doc) == []
        assert doc["checks"]["database:latency"][0]["status"] == "fail"
        assert "database" in doc["output"]
        # the server keeps serving during the outage, also under a burst of requests
        codes = await asyncio.gather(*(get(http, stack.url + "/livez") for _ in range(50)))
        assert {c for c, _, _ in codes} == {200}

        db.down = False
        await wait_for(lambda: (r := stack.monitor.latest()) is not None and r.status.value == "pass")
        assert (await get(http, stack.url + "/readyz"))[0] == 200


async def test_routes_metrics_page_and_errors() -> None:
    async with health_stack([]) as stack, aiohttp.ClientSession() as http:
        await wait_for(lambda: stack.monitor.ticks >= 2)
        code, ctype, body = await get(http, stack.url + "/metrics")
        assert code == 200
        assert ctype.startswith("text/plain")
        assert 'daz_health_check_status{component="overall"} 0.0' in body
        assert "daz_event_loop_lag_seconds" in body
        code, ctype, body = await get(http, stack.url + "/")
        assert (code, ctype) == (200, "text/html")
        assert "/static/app.js" in body
        for asset in ("/static/app.js", "/static/style.css"):
            assert (await get(http, stack.url + asset))[0] == 200
        code, _, body = await get(http, stack.url + "/api/status")
        status = json.loads(body)
        assert status["status"] == "pass"
        assert status["admin"] is False
        assert {"rooms", "queue", "throughput", "dead_letters", "breakers", "checks"} <= set(status)
        assert (await get(http, stack.url + "/nope"))[0] == 404
        assert (await get(http, stack.url + "/static/../pyproject.toml"))[0] == 404
        async with http.post(stack.url + "/health") as resp:
            assert resp.status == 405
            assert "GET" in resp.headers["Allow"]
        # admin routes do not exist without a configured token
        assert (await get(http, stack.url + "/api/breakers"))[0] == 404
        async with http.post(stack.url + "/api/breakers/database/reset") as resp:
            assert resp.status == 404


async def test_readyz_before_first_tick_is_503() -> None:
    clock = FakeClock()  # the monitor never ticks past its first hung check on a frozen clock

    class Hung:
        name = "hung"
        critical = True

        async def run(self) -> list[Any]:
            await asyncio.Event().wait()
            return []

    config = HealthConfig(port=0, check_timeout_seconds=60)
    async with health_stack([Hung()], config=config, clock=clock) as stack, aiohttp.ClientSession() as http:
        code, _, body = await get(http, stack.url + "/readyz")
        assert code == 503
        assert "starting" in body
        assert (await get(http, stack.url + "/health"))[0] == 503
        assert (await get(http, stack.url + "/livez"))[0] == 200


async def test_admin_actions_need_the_token() -> None:
    breakers: list[dict[str, Any]] = [{"name": "database", "state": "open", "failure_rate": 0.9}]
    actions: list[tuple[str, str]] = []
    replayed: list[int] = []

    def act(name: str, action: str) -> None:
        actions.append((name, action))
        breakers[0]["state"] = "closed"

    async def replay(item_id: int) -> bool:
        replayed.append(item_id)
        return item_id == 7

    def dead(limit: int) -> list[DeadLetterView]:
        return [DeadLetterView(7, "sql.exec", "corr-1", 3, "SqlError: boom", "2026-01-01T00:00:00Z")][:limit]

    def snapshot() -> Sequence[Mapping[str, Any]]:
        return breakers

    sources = StatusSources(breakers=snapshot, breaker_action=act, replay=replay, dead_letters=dead)
    config = HealthConfig(port=0, interval_seconds=0.1, admin_token=SecretStr(TOKEN))
    async with health_stack([], config=config, sources=sources) as stack, aiohttp.ClientSession() as http:
        base = stack.url
        async with http.get(base + "/api/breakers") as resp:
            assert resp.status == 401
            assert TOKEN not in await resp.text()
        async with http.get(base + "/api/breakers", headers={"X-Daz-Admin-Token": "wrong"}) as resp:
            assert resp.status == 401
        ok = {"X-Daz-Admin-Token": TOKEN}
        async with http.get(base + "/api/breakers", headers=ok) as resp:
            assert resp.status == 200
            assert (await resp.json())[0]["state"] == "open"
        async with http.post(base + "/api/breakers/database/reset") as resp:
            assert resp.status == 401
        assert actions == []
        async with http.post(base + "/api/breakers/database/reset", headers=ok) as resp:
            assert resp.status == 200
        async with http.post(base + "/api/breakers/nosuch/open", headers=ok) as resp:
            assert resp.status == 404
        async with http.post(base + "/api/breakers/database/explode", headers=ok) as resp:
            assert resp.status == 404
        assert actions == [("database", "reset")]
        async with http.post(base + "/api/retry/7/replay", headers=ok) as resp:
            assert resp.status == 200
        async with http.post(base + "/api/retry/8/replay", headers=ok) as resp:
            assert resp.status == 404
        async with http.post(base + "/api/retry/x/replay", headers=ok) as resp:
            assert resp.status == 400
        assert replayed == [7, 8]
        _, _, body = await get(http, base + "/api/status")
        status = json.loads(body)
        assert status["admin"] is True
        assert status["dead_letters"][0]["last_error"] == "SqlError: boom"
        assert status["breakers"][0]["state"] == "closed"
        assert TOKEN not in body


async def test_a_hanging_source_does_not_take_the_page_down() -> None:
    async def stuck() -> Any:
        await asyncio.Event().wait()

    sources = StatusSources(queue=stuck, spool=lambda: 3)
    config = HealthConfig(port=0, interval_seconds=0.1, check_timeout_seconds=0.3)
    async with health_stack([], config=config, sources=sources) as stack, aiohttp.ClientSession() as http:
        code, _, body = await get(http, stack.url + "/api/status")
        status = json.loads(body)
        assert code == 200
        assert "no answer within" in status["queue"]["error"]
        assert status["spool"] == 3
