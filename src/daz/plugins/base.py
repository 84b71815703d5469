"""The plugin seam: the ``Plugin`` protocol and the small context a plugin is given.

A plugin depends on the bus and this context only, never on another plugin or on the rooms and
SQL internals. Event handlers are registered through ``ctx.subscribe`` (not ``bus.subscribe``) so
the host can tell a crashing plugin from a crashing bus subscriber: a handler that raises crashes
its plugin, which the host then restarts with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from daz.clock import Clock
from daz.config import format_problem
from daz.cytube.channel import ChannelState
from daz.cytube.room_actions import RoomActions
from daz.errors import ConfigError
from daz.events.bus import Event, EventBus, Subscription
from daz.metrics import DazMetrics
from daz.plugins.command_spec import CommandRegistry

EventHandler = Callable[[Event], Awaitable[None] | None]
StatusSource = Callable[[], Awaitable[str]]


@runtime_checkable
class Plugin(Protocol):
    """A unit of bot behaviour. ``setup`` registers handlers; ``run`` returns soon after ``stopping``."""

    name: str
    depends_on: tuple[str, ...]

    async def setup(self, ctx: PluginContext) -> None: ...

    async def run(self, stopping: asyncio.Event) -> None: ...


class SendApi(Protocol):
    """What plugins may do to rooms (implemented by ``daz.cytube.RoomManager``)."""

    async def send_chat(self, room: str, text: str, *, action: bool = False,
                        correlation_id: str | None = None) -> list[str]: ...

    async def send_pm(
        self, room: str, user: str, text: str, *, correlation_id: str | None = None
    ) -> list[str]: ...


@runtime_checkable
class ChannelApi(Protocol):
    """The rooms' channel replicas (implemented by ``daz.cytube.RoomManager``)."""

    def channel(self, room: str) -> ChannelState | None: ...


class SqlApi(Protocol):
    """The part of ``daz.sql.SqlService`` plugins use. Placeholders are ``$1, $2`` on both backends."""

    async def query(self, sql: LiteralString, *params: Any, source: str | None = None,
                    correlation_id: str | None = None) -> list[dict[str, Any]]: ...

    async def query_one(self, sql: LiteralString, *params: Any, source: str | None = None,
                        correlation_id: str | None = None) -> dict[str, Any] | None: ...

    async def exec(self, sql: LiteralString, *params: Any, source: str | None = None,
                   idempotency_key: str | None = None, correlation_id: str | None = None) -> int: ...

    async def exec_many(
        self, sql: LiteralString, rows: Sequence[Sequence[Any]], *, source: str | None = None,
        idempotency_key: str | None = None,
    ) -> int: ...


class Bot(Protocol):
    """Identity facts a plugin may need (the bot's own name per room, to skip its own events)."""

    def username(self, room: str) -> str | None: ...


@dataclass
class PluginContext:
    """Everything a plugin may touch. ``config`` is the plugin's own section, already validated."""

    name: str
    bus: EventBus
    clock: Clock
    metrics: DazMetrics
    log: Any
    config: Mapping[str, Any] = field(default_factory=dict)
    sql: SqlApi | None = None
    rooms: SendApi | None = None
    channels: ChannelApi | None = None
    # Channel actions (queue, delete, skip, polls, kick, mute, ...): daz.cytube.room_actions.
    actions: RoomActions | None = None
    status: StatusSource | None = None
    started_at: float = 0.0
    on_handler_error: Callable[[BaseException], None] | None = None
    subscriptions: list[Subscription] = field(default_factory=list)
    # Shared by every plugin of a host, so ``!help`` lists all of them (command_framework.py).
    commands: CommandRegistry = field(default_factory=CommandRegistry)

    def subscribe(
        self, pattern: str, handler: EventHandler, *, queue_size: int | None = None
    ) -> Subscription:
        """Subscribe ``handler``; if it raises, the plugin is reported crashed and restarted."""
        report = self.on_handler_error

        async def guarded(event: Event) -> None:
            try:
                result = handler(event)
                if result is not None:
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if report is None:
                    raise
                report(exc)

        sub = self.bus.subscribe(
            pattern, guarded, name=f"plugin:{self.name}:{pattern}", queue_size=queue_size
        )
        self.subscriptions.append(sub)
        return sub

    def channel(self, room: str) -> ChannelState | None:
        """An immutable snapshot of ``room``'s channel (users, playlist, what plays, poll,
        permissions...; see ``daz.cytube.channel``). None before the room's first complete join.
        Read it again for fresh data: a snapshot never changes."""
        return None if self.channels is None else self.channels.channel(room)

    def close(self) -> None:
        """Drop every subscription this context made (the host calls it when the plugin stops)."""
        for sub in self.subscriptions:
            self.bus.unsubscribe(sub)
        self.subscriptions.clear()
        self.commands.remove_owner(self.name)


class PluginSettings(BaseModel):
    """Base for a plugin's config model: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SettingsT = TypeVar("SettingsT", bound=PluginSettings)


def parse_settings(model: type[SettingsT], plugin: str, raw: Mapping[str, Any]) -> SettingsT:
    """Validate ``raw`` with ``model``; errors name ``plugins.<plugin>.<field>`` one per line."""
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = [
            format_problem({**err, "loc": ("plugins", plugin, *err.get("loc", ()))}) for err in exc.errors()
        ]
        raise ConfigError(f"plugins.{plugin}: {len(problems)} problem(s)", problems) from exc


def event_fields(event: Event) -> dict[str, Any]:
    """Flatten a ``cytube.*`` bus event into plain fields, whatever the payload object is.

    The rooms package publishes ``{"room": ..., "event": <frozen dataclass>}``; older or test
    publishers may send a dict. Plugins read both through this one function.
    """
    data = event.data if isinstance(event.data, Mapping) else {}
    inner = data.get("event", data)
    fields: dict[str, Any] = {}
    if isinstance(inner, Mapping):
        fields.update(inner)
    elif inner is not None:
        for name in getattr(inner, "__dataclass_fields__", {}) or getattr(inner, "__slots__", ()):
            fields[name] = getattr(inner, name, None)
    for key, value in data.items():
        if key != "event":
            fields.setdefault(key, value)
    # One vocabulary for plugins: the wire's names (msg, time) and the parsed ones (text, time_ms).
    for alias, canonical in _ALIASES:
        if alias in fields and fields.get(canonical) is None:
            fields[canonical] = fields[alias]
    return fields


_ALIASES = (("text", "msg"), ("time_ms", "time"), ("name", "username"), ("media_id", "id"),
            ("media_type", "type"))
