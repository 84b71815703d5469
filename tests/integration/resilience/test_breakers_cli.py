"""`daz breakers` against a real aiohttp server on 127.0.0.1 serving ``breaker_routes``."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from typer.testing import CliRunner

from daz.cli import app
from daz.cli.breakers import EXIT_AUTH, EXIT_NOT_FOUND, EXIT_UNREACHABLE
from daz.config import BreakerConfig
from daz.resilience.machine import BreakerState
from daz.resilience.registry import BreakerRegistry
from daz.resilience.routes import breaker_routes
from daz.testing import FakeClock

TOKEN = "s3cret-admin"


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, BreakerRegistry]]:
    registry = BreakerRegistry({"database": BreakerConfig(minimum_calls=2)}, None, None, FakeClock(),
                               random.Random(1))
    for _ in range(2):
        registry.get("database").acquire().done(ConnectionError())
    registry.get("cytube:lobby")
    application = web.Application()
    application.add_routes(breaker_routes(registry, admin_token=TOKEN))
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", registry
    finally:
        await runner.cleanup()


def last_line(text: str) -> str:
    """The CLI's answer; the in-process server's own log lines share the captured stdout."""
    return text.strip().splitlines()[-1]


async def cli(*args: str) -> tuple[int, str, str]:
    def invoke() -> tuple[int, str, str]:
        result = CliRunner().invoke(app, ["breakers", *args], env={"DAZ_ADMIN_TOKEN": ""})
        return result.exit_code, result.stdout, result.stderr

    return await asyncio.to_thread(invoke)


async def test_table_lists_every_breaker_with_its_figures(served: tuple[str, BreakerRegistry]) -> None:
    url, _ = served
    code, out, err = await cli("--url", url, "--token", TOKEN)
    assert code == 0, err
    header, *lines = out.strip().splitlines()
    assert header.split()[:3] == ["NAME", "STATE", "CALLS"]
    rows = {line.split()[0]: line.split() for line in lines}
    assert set(rows) == {"cytube:lobby", "database"}
    assert rows["database"][1:6] == ["open", "2", "2", "0", "100.0"]
    assert rows["database"][-1].endswith("Z"), "next probe time shown for an open breaker"
    assert rows["cytube:lobby"][1] == "closed"


async def test_operator_commands_change_the_running_instance(served: tuple[str, BreakerRegistry]) -> None:
    url, registry = served
    code, out, _ = await cli("close", "database", "--url", url, "--token", TOKEN)
    assert (code, last_line(out)) == (0, "database: closed")
    assert registry.get("database").state is BreakerState.CLOSED
    code, out, _ = await cli("--url", url, "--token", TOKEN, "open", "cytube:lobby")
    assert (code, last_line(out)) == (0, "cytube:lobby: forced_open")
    code, out, _ = await cli("reset", "cytube:lobby", "--url", url, "--token", TOKEN)
    assert (code, last_line(out)) == (0, "cytube:lobby: closed")


async def test_wrong_or_missing_token_is_one_clear_line(served: tuple[str, BreakerRegistry]) -> None:
    url, registry = served
    code, _, err = await cli("open", "database", "--url", url, "--token", "tok-XYZ-987")
    assert code == EXIT_AUTH
    assert len(err.strip().splitlines()) == 1
    assert "X-Daz-Admin-Token" in err
    assert "tok-XYZ-987" not in err, "a token is never echoed"
    assert registry.get("database").state is BreakerState.OPEN, "nothing changed"
    code, _, err = await cli("--url", url)
    assert code == EXIT_AUTH
    assert "--token" in err


async def test_unknown_breaker_is_not_found(served: tuple[str, BreakerRegistry]) -> None:
    url, registry = served
    code, _, err = await cli("open", "redis", "--url", url, "--token", TOKEN)
    assert code == EXIT_NOT_FOUND
    assert "no circuit breaker named 'redis'" in err
    assert "redis" not in registry.names()


async def test_unreachable_instance_is_one_clear_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = await cli("--url", f"http://127.0.0.1:{port}", "--token", TOKEN)
    assert code == EXIT_UNREACHABLE
    assert err.strip().splitlines() == [err.strip()]
    assert f"cannot reach daz at http://127.0.0.1:{port}/api/breakers" in err


async def test_admin_api_off_without_a_configured_token() -> None:
    registry = BreakerRegistry({}, None, None, FakeClock(), random.Random(1))
    application = web.Application()
    application.add_routes(breaker_routes(registry, admin_token=None))
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        code, _, err = await cli("--url", f"http://127.0.0.1:{runner.addresses[0][1]}", "--token", "x")
    finally:
        await runner.cleanup()
    assert code == EXIT_AUTH
    assert "admin API disabled" in err


async def test_cli_against_the_health_servers_admin_routes() -> None:
    """The routes `daz run` actually serves (daz.health.http) wired to the registry as app.py does."""
    from pydantic import SecretStr

    from daz.config import HealthConfig
    from daz.health.http import build_app
    from daz.health.monitor import HealthMonitor
    from daz.health.sources import StatusSources
    from daz.health.status import StatusBoard
    from daz.metrics import DazMetrics

    clock = FakeClock()
    registry = BreakerRegistry({"database": BreakerConfig(minimum_calls=2)}, None, None, clock,
                               random.Random(1))
    metrics = DazMetrics()
    config = HealthConfig(admin_token=SecretStr(TOKEN))
    monitor = HealthMonitor([], None, metrics, clock, config)
    sources = StatusSources(breakers=registry.snapshot, breaker_action=registry.act)
    application = build_app(monitor, StatusBoard(monitor, sources, metrics, clock, config), metrics, config)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        code, out, err = await cli("open", "database", "--url", url, "--token", TOKEN)
        assert (code, last_line(out)) == (0, "database: forced_open"), err
        code, out, err = await cli("--url", url, "--token", TOKEN)
        assert code == 0, err
        assert [line.split()[:2] for line in out.strip().splitlines()[-1:]] == [["database", "forced_open"]]
        code, _, _ = await cli("close", "nope", "--url", url, "--token", TOKEN)
        assert code == EXIT_NOT_FOUND
        code, _, _ = await cli("--url", url, "--token", "bad")
        assert code == EXIT_AUTH
    finally:
        await runner.cleanup()
