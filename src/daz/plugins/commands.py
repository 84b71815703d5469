"""Built-in ``commands`` plugin: ``!help``, ``!uptime`` and ``!status`` in chat.

Replays of old lines on join (``backlog``) and the bot's own echoes (``own``) are never answered,
and each user has a cooldown so a user (or two bots answering each other) cannot make the bot flood
the channel into CyTube's chat rate limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from daz.events.bus import Event
from daz.plugins.base import PluginContext, PluginSettings, event_fields, parse_settings

DEFAULT_PREFIX = "!"
DEFAULT_COOLDOWN_SECONDS = 3.0
STATUS_TIMEOUT_SECONDS = 2.0
_COOLDOWN_PRUNE_AT = 1000
COMMAND_HELP = {
    "help": "list the commands",
    "uptime": "how long the bot has been running",
    "status": "one-line health summary",
}


class CommandsSettings(PluginSettings):
    prefix: Annotated[str, Field(min_length=1, max_length=3, pattern=r"^\S+$")] = DEFAULT_PREFIX
    cooldown_seconds: Annotated[float, Field(ge=0)] = DEFAULT_COOLDOWN_SECONDS


def parse_command(text: str, prefix: str) -> tuple[str, str] | None:
    """``"!status now"`` → ``("status", "now")``; None when ``text`` is not a command. Pure."""
    stripped = text.strip()
    if not stripped.startswith(prefix) or len(stripped) == len(prefix):
        return None
    word, _, rest = stripped[len(prefix):].partition(" ")
    if not word or not word.isascii() or not word.replace("_", "").isalnum():
        return None
    return word.lower(), rest.strip()


def format_duration(seconds: float) -> str:
    """``93784`` → ``1d 2h 3m 4s``; leading zero units are left out. Pure."""
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    out: list[str] = []
    for value, unit in parts:
        if value or out:
            out.append(f"{value}{unit}")
    out.append(f"{secs}s")
    return " ".join(out)


class Cooldown:
    """Per-user cooldown: ``allow`` answers at most once per ``seconds`` per user. Pure on ``now``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[str, float] = {}

    def allow(self, user: str, now: float) -> bool:
        last = self._last.get(user)
        if last is not None and now - last < self.seconds:
            return False
        self._last[user] = now
        if len(self._last) > _COOLDOWN_PRUNE_AT:
            self._last = {u: t for u, t in self._last.items() if now - t < self.seconds}
        return True


class CommandsPlugin:
    name = "commands"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.settings = parse_settings(CommandsSettings, self.name, config or {})
        self.cooldown = Cooldown(self.settings.cooldown_seconds)
        self.answered = 0
        self._ctx: PluginContext | None = None

    async def setup(self, ctx: PluginContext) -> None:
        self._ctx = ctx
        ctx.subscribe("cytube.chat", self.on_chat)

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    async def on_chat(self, event: Event) -> None:
        ctx = self._ctx
        if ctx is None or ctx.rooms is None:
            return
        fields = event_fields(event)
        if fields.get("backlog") or fields.get("own"):
            return
        parsed = parse_command(str(fields.get("msg") or ""), self.settings.prefix)
        if parsed is None or parsed[0] not in COMMAND_HELP:
            return
        room, user = str(fields.get("room") or ""), str(fields.get("username") or "")
        if not room or not self.cooldown.allow(user, ctx.clock.monotonic()):
            return
        reply = await self.reply_for(parsed[0], ctx)
        ctx.log.info("commands.answered", room=room, command=parsed[0], user=user)
        self.answered += 1
        await ctx.rooms.send_chat(room, reply, correlation_id=event.correlation_id)

    async def reply_for(self, command: str, ctx: PluginContext) -> str:
        if command == "help":
            listed = ", ".join(f"{self.settings.prefix}{c} ({h})" for c, h in COMMAND_HELP.items())
            return f"commands: {listed}"
        if command == "uptime":
            return f"up {format_duration(ctx.clock.monotonic() - ctx.started_at)}"
        if ctx.status is None:
            return "status: no status source"
        try:
            async with asyncio.timeout(STATUS_TIMEOUT_SECONDS):
                return f"status: {await ctx.status()}"
        except TimeoutError:
            return "status: unknown (status source did not answer in time)"
