"""`daz rooms` against the real app (its admin API on 127.0.0.1) and the fake CyTube server: a wrong
password stops the room after one attempt, the fixed password file + `daz rooms restart` → READY,
`daz rooms stop` → STOPPED."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from daz.app import AppOptions, DazApp
from daz.cli import app as cli_app
from daz.cli.admin_client import EXIT_AUTH, EXIT_NOT_FOUND
from daz.config import validate_config
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

TOKEN = "rooms-admin-token"


async def rooms_cli(url: str, *args: str, token: str = TOKEN) -> tuple[int, str, str]:
    def invoke() -> tuple[int, str, str]:
        result = CliRunner().invoke(cli_app, ["rooms", *args, "--url", url, "--token", token],
                                    env={"DAZ_ADMIN_TOKEN": ""})
        return result.exit_code, result.stdout, result.stderr

    return await asyncio.to_thread(invoke)


async def until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_wrong_password_stops_then_daz_rooms_restart_after_the_fix(tmp_path: Path) -> None:
    secret = tmp_path / "bot.pw"
    secret.write_text("wrong\n")
    limits = CytubeLimits(guest_login_window_seconds=0.5)
    async with FakeCytubeServer(limits=limits, accounts={"dazbot": "right"}) as server:
        config = validate_config({
            "rooms": [{"channel": "lobby", "username": "dazbot", "password_file": str(secret),
                       "server_url": server.url}],
            "cytube": {"backoff": {"base_seconds": 0.2, "max_seconds": 0.5}, "probe": {"enabled": False}},
            "database": {"url": f"sqlite:///{tmp_path / 'daz.db'}"},
            "spool": {"path": str(tmp_path / "spool.sqlite")},
            "health": {"port": 0, "interval_seconds": 0.3, "external_check": False, "admin_token": TOKEN},
            "plugins": {},
        })
        async with DazApp(config, AppOptions(stop_grace_seconds=3.0)) as app:
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(app.run(stopping), name="test.app")
                try:
                    assert app.health_server is not None
                    async with asyncio.timeout(10):
                        await app.health_server.started.wait()
                    url = app.health_server.url

                    def state() -> RoomState:
                        return app.rooms.room("lobby").state

                    await until(lambda: state() is RoomState.STOPPED)
                    code, out, err = await rooms_cli(url)
                    assert code == 0, err
                    row = next(line for line in out.splitlines() if line.startswith("lobby"))
                    assert row.split()[1] == "stopped"
                    assert row.endswith("login refused: Invalid username/password combination")
                    assert "1 rooms: 0 ready, 0 parked, 1 stopped or kicked" in out
                    assert len(server.login_refusals) == 1

                    secret.write_text("right\n")
                    code, out, err = await rooms_cli(url, "restart", "lobby")
                    assert (code, out.strip().splitlines()[-1]) == (0, "lobby: restart requested"), err
                    await until(lambda: state() is RoomState.READY)

                    code, _, _ = await rooms_cli(url, "stop", "lobby")
                    assert code == 0
                    await until(lambda: state() is RoomState.STOPPED)
                    assert app.rooms.room("lobby").reason == "stopped by operator: admin API"
                    assert "dazbot" not in server.sessions("lobby")

                    assert (await rooms_cli(url, "restart", "nowhere"))[0] == EXIT_NOT_FOUND
                    assert (await rooms_cli(url, token="wrong"))[0] == EXIT_AUTH
                finally:
                    stopping.set()
        assert len(server.login_refusals) == 1
