"""Built-in ``greeter`` plugin (off by default): welcomes users who join, rate-limited.

Two limits keep it polite: one greeting per user per ``per_user_seconds`` (someone reconnecting
on a flaky link is greeted once), and at most ``burst`` greetings per ``window_seconds`` per room
(a raid or a server restart that rejoins everyone does not turn into a wall of welcomes).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, field_validator

from daz.events.bus import Event
from daz.plugins.base import PluginContext, PluginSettings, event_fields, parse_settings


class GreeterSettings(PluginSettings):
    message: Annotated[str, Field(min_length=1, max_length=240)] = "Welcome, {user}!"
    per_user_seconds: Annotated[float, Field(ge=0)] = 3600.0
    burst: Annotated[int, Field(ge=1)] = 3
    window_seconds: Annotated[float, Field(gt=0)] = 60.0

    @field_validator("message")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(user="x", room="y")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("may only use the placeholders {user} and {room}") from exc
        return value


class GreetLimiter:
    """Decides whether to greet ``user`` in ``room`` at ``now``. Pure on its inputs."""

    def __init__(self, per_user_seconds: float, burst: int, window_seconds: float) -> None:
        self.per_user_seconds = per_user_seconds
        self.burst = burst
        self.window_seconds = window_seconds
        self._users: dict[tuple[str, str], float] = {}
        self._recent: dict[str, deque[float]] = {}

    def allow(self, room: str, user: str, now: float) -> bool:
        last = self._users.get((room, user))
        if last is not None and now - last < self.per_user_seconds:
            return False
        recent = self._recent.setdefault(room, deque())
        while recent and now - recent[0] >= self.window_seconds:
            recent.popleft()
        if len(recent) >= self.burst:
            return False
        recent.append(now)
        self._users[(room, user)] = now
        if len(self._users) > 10_000:
            self._users = {k: t for k, t in self._users.items() if now - t < self.per_user_seconds}
        return True


class GreeterPlugin:
    name = "greeter"
    depends_on: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.settings = parse_settings(GreeterSettings, self.name, config or {})
        self.limiter = GreetLimiter(
            self.settings.per_user_seconds, self.settings.burst, self.settings.window_seconds
        )
        self._me: dict[str, str] = {}
        self._ctx: PluginContext | None = None

    async def setup(self, ctx: PluginContext) -> None:
        self._ctx = ctx
        ctx.subscribe("room.ready", self.on_ready)
        ctx.subscribe("cytube.user.joined", self.on_join)

    def on_ready(self, event: Event) -> None:
        # The bot's own addUser arrives right after its login: remember its name to skip it.
        data = event.data if isinstance(event.data, dict) else {}
        if data.get("room") and data.get("user"):
            self._me[str(data["room"])] = str(data["user"]).lower()

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()

    async def on_join(self, event: Event) -> None:
        ctx = self._ctx
        if ctx is None or ctx.rooms is None:
            return
        f = event_fields(event)
        # The userlist replayed on every (re)join is not someone arriving.
        if f.get("backlog") or f.get("own"):
            return
        room = str(f.get("room") or "")
        user = str(f.get("username") or "")
        if not room or not user or self._me.get(room) == user.lower():
            return
        if not self.limiter.allow(room, user, ctx.clock.monotonic()):
            return
        await ctx.rooms.send_chat(room, self.settings.message.format(user=user, room=room),
                                  correlation_id=event.correlation_id)
