"""``!roll 2d6``: an example third-party daz plugin (see docs/plugins.md).

It shows the whole plugin surface: a validated config section, a dependency-free ``setup`` that
subscribes through the context, a pure core (``parse_roll``/``roll``) tested without I/O, replies
through the room send API, and skipping replayed backlog lines and the bot's own echoes.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from daz.events.bus import Event
from daz.plugins.base import PluginContext, PluginSettings, event_fields, parse_settings

_ROLL = re.compile(r"^(?P<count>\d{1,3})?d(?P<sides>\d{1,4})$", re.IGNORECASE)


class DiceSettings(PluginSettings):
    command: Annotated[str, Field(pattern=r"^\S{1,16}$")] = "!roll"
    max_dice: Annotated[int, Field(ge=1, le=100)] = 10
    max_sides: Annotated[int, Field(ge=2, le=1000)] = 100


def parse_roll(text: str, settings: DiceSettings) -> tuple[int, int] | None:
    """``"!roll 2d6"`` → ``(2, 6)``; None if it is not a (valid) roll command. Pure."""
    head, _, arg = text.strip().partition(" ")
    if head != settings.command:
        return None
    match = _ROLL.match(arg.strip() or "1d6")
    if match is None:
        return None
    count, sides = int(match["count"] or 1), int(match["sides"])
    if not 1 <= count <= settings.max_dice or not 2 <= sides <= settings.max_sides:
        return None
    return count, sides


def roll(count: int, sides: int, rng: random.Random) -> list[int]:
    return [rng.randint(1, sides) for _ in range(count)]


class DicePlugin:
    name = "dice"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any] | None = None, *, rng: random.Random | None = None) -> None:
        # Validate here, so a bad section stops `daz run` at start with "plugins.dice.<field>: ...".
        self.settings = parse_settings(DiceSettings, self.name, config or {})
        self.rng = rng if rng is not None else random.Random()
        self._ctx: PluginContext | None = None

    async def setup(self, ctx: PluginContext) -> None:
        self._ctx = ctx
        ctx.subscribe("cytube.chat", self.on_chat)

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    async def on_chat(self, event: Event) -> None:
        ctx = self._ctx
        fields = event_fields(event)
        if ctx is None or ctx.rooms is None or fields.get("backlog") or fields.get("own"):
            return
        parsed = parse_roll(str(fields.get("msg") or ""), self.settings)
        if parsed is None:
            return
        dice = roll(*parsed, self.rng)
        user = fields.get("username")
        await ctx.rooms.send_chat(str(fields["room"]), f"{user} rolled {parsed[0]}d{parsed[1]}: "
                                  f"{' + '.join(map(str, dice))} = {sum(dice)}")
