"""Helpers for the acceptance tests: a `daz run` subprocess against the in-test fake CyTube server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from daz.testing.fake_cytube import ChatRecord, FakeCytubeServer
from daz.testing.leaks import unretrieved_in

ROOM = "lobby"
BOT = "DazBot"


def write_config(tmp: Path, server: FakeCytubeServer, plugins: dict[str, Any] | None = None) -> Path:
    config = {
        "rooms": [{"channel": ROOM, "username": BOT}],
        "cytube": {"base_url": server.url, "stable_after_seconds": 1,
                   "backoff": {"base_seconds": 0.3, "max_seconds": 2},
                   "probe": {"interval_seconds": 0.2, "max_interval_seconds": 0.5, "timeout_seconds": 0.5},
                   # the numbers of the server daz talks to, as an operator configures them
                   "servers": {"default": {
                       "guest_login_window_seconds": server.limits.guest_login_window_seconds,
                       "connection_burst": server.limits.bucket_size,
                       "connection_refill_seconds": server.limits.refill_seconds,
                       "max_sockets": server.limits.max_sockets_per_ip}}},
        "database": {"url": f"sqlite:///{tmp / 'bot.db'}"},
        "spool": {"path": str(tmp / "spool.sqlite")},
        "retry": {"poll_interval_seconds": 0.5},
        "health": {"port": 0, "interval_seconds": 1, "external_check": False},
        "plugins": plugins or {"commands": {"cooldown_seconds": 0},
                               "chatlog": {"flush_interval_seconds": 0.2}},
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


class BotProcess:
    """``daz run -c config`` with stdout/stderr in files (never a full pipe)."""

    def __init__(self, tmp: Path, config: Path, *, extra_path: Path | None = None) -> None:
        self.out_path = tmp / "stdout.txt"
        self.err_path = tmp / "stderr.txt"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAZ_")}
        if extra_path is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
        self._out = self.out_path.open("w")
        self._err = self.err_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daz", "run", "-c", str(config), "--log-format", "json", "--grace", "5"],
            stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL, cwd=tmp, env=env,
        )

    def stdout(self) -> str:
        return self.out_path.read_text()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def log_events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.stderr().splitlines():
            if f'"{name}"' in line:
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    async def status_url(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"status page (http://127\.0\.0\.1:\d+)/", self.stdout())
            if match:
                return match.group(1)
            assert self.proc.poll() is None, (
                f"daz run exited early:\n{self.stdout()}\n{self.stderr()[-3000:]}")
            await asyncio.sleep(0.1)
        raise AssertionError(f"no status page line in:\n{self.stdout()}")

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, wait, and fail if the bot's log reports an asyncio exception nobody retrieved
        (the suite's in-process guard cannot see the bot's own asyncio logger)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            self._out.close()
            self._err.close()
        leaked = unretrieved_in(self.stdout() + "\n" + self.stderr())
        assert not leaked, "the bot logged exceptions nobody retrieved:\n" + "\n".join(leaked)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()
        self._err.close()


async def wait_for(what: str, cond: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def bot_lines(server: FakeCytubeServer) -> list[ChatRecord]:
    return [r for r in server.chat_log(ROOM) if r.username == BOT]


def chatlog_rows(db: Path) -> list[tuple[str, int, str]]:
    with closing(sqlite3.connect(db, timeout=5)) as conn:
        return conn.execute(
            "SELECT username, event_time_ms, message FROM daz_chatlog WHERE kind = 'chat'").fetchall()
