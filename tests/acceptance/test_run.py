"""`daz run -c config.json` against the fake CyTube server: commands answered across a server
restart, a clean exit on SIGTERM, every chat line in the chat log exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from bot_process import ROOM, BotProcess, bot_lines, chatlog_rows, wait_for, write_config

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

pytestmark = pytest.mark.slow


async def test_run_answers_commands_survives_a_server_restart_and_logs_every_line(tmp_path: Path) -> None:
    fake = FakeCytubeServer(ping_interval=1.0, ping_timeout=2.0,
                            limits=CytubeLimits(guest_login_window_seconds=0.5))
    async with fake as server:
        bot = BotProcess(tmp_path, write_config(tmp_path, server))
        try:
            await bot.status_url()
            await wait_for("the bot in the room", lambda: "DazBot" in server.sessions(ROOM))
            await server.say(ROOM, "alice", "!uptime")
            await wait_for("!uptime reply", lambda: any(r.text.startswith("up ") for r in bot_lines(server)))
            await server.say(ROOM, "alice", "!status")
            await wait_for("!status reply",
                           lambda: any(r.text.startswith("status:") for r in bot_lines(server)))
            for i in range(10):
                await server.say(ROOM, "bob", f"before the restart {i}")

            await server.stop()
            await wait_for("the server to be gone", lambda: not server.sessions(ROOM), timeout=5)
            await server.start()
            await wait_for("the bot back in the room", lambda: "DazBot" in server.sessions(ROOM))
            answered = len(bot_lines(server))
            await server.say(ROOM, "carol", "!uptime")
            await wait_for("!uptime reply after the restart", lambda: len(bot_lines(server)) > answered)
            for i in range(10):
                await server.say(ROOM, "carol", f"after the restart {i} <b>&</b>")

            # Every line the server accepted (users and the bot) is in the chat log before we stop.
            truth = {(r.username, r.time_ms, r.text) for r in server.chat_log(ROOM)}
            db = tmp_path / "bot.db"
            await wait_for("all lines in the chat log", lambda: truth <= set(chatlog_rows(db)))
            code = bot.terminate()
        finally:
            bot.kill()
    assert code == 0, bot.stderr()[-3000:]
    assert "daz: stopped cleanly" in bot.stdout()
    assert "migrations applied now: [1, 2, 3" in bot.stdout()
    rows = chatlog_rows(tmp_path / "bot.db")
    assert set(rows) == truth
    assert max(Counter(rows).values()) == 1, "a chat line was logged twice"
    assert len(rows) == len(truth) >= 24
