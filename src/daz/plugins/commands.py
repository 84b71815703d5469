"""Built-in ``commands`` plugin: ``!help``, ``!uptime`` and ``!status``, on the command framework.

The framework (``daz.plugins.command_framework``) skips replayed backlog lines and the bot's own
echoes, ranks the caller from the channel replica and applies per-user and per-room cooldowns, so a
user (or two bots answering each other) cannot make the bot flood the channel into CyTube's chat
rate limit. ``!help`` lists every plugin's commands the caller may run, not just these three.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, Any, Protocol

from pydantic import Field

from daz.errors import DazError
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


class _Named(Protocol):
    @property
    def value(self) -> str: ...


class _Report(Protocol):
    """A health report (``daz.health.monitor.HealthReport``): only its overall status is read."""

    @property
    def status(self) -> _Named: ...


class _Room(Protocol):
    """A room's status (``daz.cytube.supervisor.RoomStatus``): its name and state."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> _Named: ...


class _Queue(Protocol):
    """Retry-queue figures (``daz.health.sources.QueueView``): item counts by status."""

    @property
    def depth(self) -> Mapping[str, int]: ...


class StatusLine:
    """The one-line summary ``!status`` prints: the health verdict, rooms, queue, breakers, and the
    plugins that are not passing. The parts are read through callables, so this package imports
    none of the packages it reports on; the app passes them in."""

    def __init__(
        self,
        *,
        health: Callable[[], _Report | None],
        rooms: Callable[[], Iterable[_Room]],
        queue: Callable[[], Awaitable[_Queue]],
        breakers: Callable[[], Iterable[Mapping[str, Any]]],
        plugins: Callable[[], Mapping[str, str]],
    ) -> None:
        self.health = health
        self.rooms = rooms
        self.queue = queue
        self.breakers = breakers
        self.plugins = plugins

    async def __call__(self) -> str:
        report = self.health()
        parts: list[str] = []
        if report is not None:
            parts.append(report.status.value)
        rooms = ", ".join(f"{room.name} {room.state.value}" for room in self.rooms())
        parts.append(f"rooms: {rooms or 'none'}")
        try:
            depth = (await self.queue()).depth
            parts.append(f"queue: {depth.get('pending', 0)} pending, {depth.get('dead_letter', 0)} dead")
        except DazError:
            parts.append("queue: store unreachable")
        open_breakers = [b.get("name") for b in self.breakers() if b.get("state") != "closed"]
        parts.append(f"breakers: {', '.join(map(str, open_breakers)) or 'all closed'}")
        bad = [name for name, verdict in self.plugins().items() if verdict != "pass"]
        if bad:
            parts.append(f"plugins degraded: {', '.join(bad)}")
        return "; ".join(parts)


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
