"""A third-party plugin that raises on every event: restarted with backoff, reported in health and
metrics, while the built-in plugins keep answering and logging. Runs `daz run` as a subprocess and
installs the plugin the way a user would (a distribution with a ``daz.plugins`` entry point)."""

from __future__ import annotations

import asyncio
import json
import textwrap
import urllib.request
from pathlib import Path

import pytest
from bot_process import ROOM, BotProcess, bot_lines, chatlog_rows, wait_for, write_config

from daz.testing.fake_cytube import FakeCytubeServer

pytestmark = pytest.mark.slow

CRASHER = '''
import asyncio


class Crasher:
    name = "crasher"
    depends_on = ()

    def __init__(self, config):
        self.config = config

    async def setup(self, ctx):
        ctx.subscribe("cytube.chat", self.boom)

    def boom(self, event):
        raise RuntimeError("crasher: I fail on every event")

    async def run(self, stopping):
        await stopping.wait()
'''


def install_plugin(site: Path) -> None:
    """A minimal installed distribution: module + dist-info with the entry point."""
    site.mkdir()
    (site / "crashmod.py").write_text(CRASHER)
    info = site / "daz_crasher-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: daz-crasher\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [daz.plugins]
        crasher = crashmod:Crasher
    """))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return str(response.read().decode())


async def test_crashing_plugin_is_restarted_with_backoff_and_others_keep_working(tmp_path: Path) -> None:
    install_plugin(tmp_path / "site")
    plugins = {"commands": {"cooldown_seconds": 0}, "chatlog": {"flush_interval_seconds": 0.2}, "crasher": {}}
    async with FakeCytubeServer(ping_interval=1.0, ping_timeout=2.0) as server:
        bot = BotProcess(tmp_path, write_config(tmp_path, server, plugins), extra_path=tmp_path / "site")
        try:
            url = await bot.status_url()
            await wait_for("the bot in the room", lambda: "DazBot" in server.sessions(ROOM))
            # Keep chatting so every restarted instance meets an event and crashes again.
            for i in range(40):
                await server.say(ROOM, "alice", f"line {i}")
                if len(bot.log_events("plugin.crashed")) >= 3:
                    break
                await asyncio.sleep(0.25)
            await wait_for("three crashes", lambda: len(bot.log_events("plugin.crashed")) >= 3, timeout=15)
            await server.say(ROOM, "bob", "!uptime")
            await wait_for("the commands plugin still answers",
                           lambda: any(r.text.startswith("up ") for r in bot_lines(server)))
            metrics = _get(f"{url}/metrics")
            await wait_for("health reports the plugin", lambda: _plugin_health(url) in {"warn", "fail"})
            truth = {(r.username, r.time_ms, r.text) for r in server.chat_log(ROOM)}
            await wait_for("chat log complete", lambda: truth <= set(chatlog_rows(tmp_path / "bot.db")))
            code = bot.terminate()
        finally:
            bot.kill()
    assert code == 0
    crashes = bot.log_events("plugin.crashed")
    assert all(c["plugin"] == "crasher" for c in crashes)
    assert "I fail on every event" in crashes[0]["error"]
    delays = [c["next_delay"] for c in crashes[:3]]
    # The reconnect schedule from a 1 s base: ~1 s, ~2 s, ~4 s (±25 %).
    assert 0.75 <= delays[0] <= 1.25
    assert 1.5 <= delays[1] <= 2.5
    assert 3.0 <= delays[2] <= 5.0
    restarts = [line for line in metrics.splitlines()
                if line.startswith('daz_plugin_restarts_total{plugin="crasher"}')]
    assert restarts
    assert float(restarts[0].split()[-1]) >= 1


def _plugin_health(url: str) -> str:
    doc = json.loads(_get(f"{url}/health"))
    for entry in doc.get("checks", {}).get("plugin:state", []):
        if entry.get("componentId") == "crasher":
            return str(entry["status"])
    return "missing"
