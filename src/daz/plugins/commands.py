"""Built-in ``commands`` plugin: ``!help``, ``!uptime`` and ``!status``, on the command framework.

The framework (``daz.plugins.command_framework``) skips replayed backlog lines and the bot's own
echoes, ranks the caller from the channel replica and applies per-user and per-room cooldowns, so a
user (or two bots answering each other) cannot make the bot flood the channel into CyTube's chat
rate limit. ``!help`` lists every plugin's commands the caller may run, not just these three.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from daz.plugins.base import PluginContext, PluginSettings, parse_settings
from daz.plugins.command_framework import Command, CommandRouter, Invocation, RankLookup
from daz.plugins.command_spec import split_command

DEFAULT_PREFIX = "!"
DEFAULT_COOLDOWN_SECONDS = 3.0
STATUS_TIMEOUT_SECONDS = 2.0
COMMAND_HELP = {
    "help": "list the commands you may use",
    "uptime": "how long the bot has been running",
    "status": "one-line health summary",
}


class CommandsSettings(PluginSettings):
    prefix: Annotated[str, Field(min_length=1, max_length=3, pattern=r"^\S+$")] = DEFAULT_PREFIX
    cooldown_seconds: Annotated[float, Field(ge=0)] = DEFAULT_COOLDOWN_SECONDS
    room_cooldown_seconds: Annotated[float, Field(ge=0)] = 0.0


def parse_command(text: str, prefix: str) -> tuple[str, str] | None:
    """``"!status now"`` → ``("status", "now")``; None when ``text`` is not a command. Pure."""
    return split_command(text, prefix)


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


class CommandsPlugin:
    name = "commands"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any] | None = None, *, rank_of: RankLookup | None = None) -> None:
        self.settings = parse_settings(CommandsSettings, self.name, config or {})
        self.router: CommandRouter | None = None
        self._rank_of = rank_of

    @property
    def answered(self) -> int:
        return self.router.answered if self.router is not None else 0

    async def setup(self, ctx: PluginContext) -> None:
        router = CommandRouter(ctx, prefix=self.settings.prefix, rank_of=self._rank_of)
        user_cd, room_cd = self.settings.cooldown_seconds, self.settings.room_cooldown_seconds
        for name, handler, aliases in (("help", self.help, ("commands",)), ("uptime", self.uptime, ()),
                                       ("status", self.status, ())):
            router.add(Command(name, handler, COMMAND_HELP[name], aliases=aliases,
                               user_cooldown=user_cd, room_cooldown=room_cd))
        router.attach()
        self.router = router

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    def help(self, call: Invocation) -> str:
        return call.router.help_for(call.room, call.user)

    def uptime(self, call: Invocation) -> str:
        return f"up {format_duration(call.ctx.clock.monotonic() - call.ctx.started_at)}"

    async def status(self, call: Invocation) -> str:
        source = call.ctx.status
        if source is None:
            return "status: no status source"
        try:
            async with asyncio.timeout(STATUS_TIMEOUT_SECONDS):
                return f"status: {await source()}"
        except TimeoutError:
            return "status: unknown (status source did not answer in time)"
