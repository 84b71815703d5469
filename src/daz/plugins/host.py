"""The plugin host: load plugins by name, start them in dependency order, restart crashed ones.

A plugin crash (``setup``/``run`` raising, or one of its event handlers raising) never reaches the
rest of the bot: the host drops the plugin's subscriptions, waits a backoff delay (exponential
with jitter, shorter base and cap than rooms use) and starts a fresh instance. The
restart counter resets once an instance has run for ``stable_after_seconds``. Each plugin's state is
kept in a ``PluginStatus`` on the ``PluginStatuses`` board for health and the status page; every move
is checked against the table in ``plugins/states.py`` and announced by the shared state-change hook
(``plugin.state_changed`` on the bus, a log line, the ``daz_plugin_state`` gauge).
"""

from __future__ import annotations

import asyncio
import importlib
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import structlog

from daz.aio import sleep_or_stop, wait_any
from daz.backoff import proportional_backoff
from daz.clock import Clock
from daz.cytube.room_actions import RoomActions
from daz.errors import ConfigError
from daz.events.bus import EventBus
from daz.events.state_change import PLUGIN, StateChange, StateChangeHook
from daz.metrics import DazMetrics
from daz.plugins.base import ChannelApi, Plugin, PluginContext, SendApi, SqlApi, StatusSource
from daz.plugins.command_spec import CommandRegistry
from daz.plugins.states import (
    PluginState,
    PluginStatus,
    PluginStatuses,
    check_transition,
)

log = structlog.get_logger("daz.plugins")

ENTRY_POINT_GROUP = "daz.plugins"
BUILTIN_PLUGINS: dict[str, str] = {
    "commands": "daz.plugins.commands:CommandsPlugin",
    "chatlog": "daz.plugins.chatlog:ChatlogPlugin",
    "greeter": "daz.plugins.greeter:GreeterPlugin",
}
RESTART_BASE_SECONDS = 1.0
RESTART_CAP_SECONDS = 60.0
STABLE_AFTER_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
# Generic keys the host reads from every plugin section before the plugin validates the rest.
HOST_KEYS = frozenset({"enabled"})

PluginFactory = Callable[[Mapping[str, Any]], Plugin]


@dataclass(frozen=True)
class RestartPolicy:
    base_seconds: float = RESTART_BASE_SECONDS
    cap_seconds: float = RESTART_CAP_SECONDS
    stable_after_seconds: float = STABLE_AFTER_SECONDS


def restart_delay(consecutive_crashes: int, rng: random.Random, policy: RestartPolicy) -> float:
    """Seconds to wait before restart number ``consecutive_crashes`` (1-based). Pure."""
    return proportional_backoff(max(consecutive_crashes, 1), rng,
                                base=policy.base_seconds, cap=policy.cap_seconds)


def order_plugins(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Names in start order: every plugin after its dependencies; otherwise configuration order."""
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join((*path[path.index(name):], name))
            raise ConfigError(f"plugins: dependency cycle {cycle}; remove one of the depends_on entries")
        state[name] = "visiting"
        for dep in deps[name]:
            if dep not in deps:
                raise ConfigError(
                    f"plugins.{name}: depends on '{dep}', which is not enabled; add \"{dep}\": {{}} "
                    "to the plugins section"
                )
            visit(dep, (*path, name))
        state[name] = "done"
        ordered.append(name)

    for name in deps:
        visit(name, ())
    return ordered


def available_plugins() -> dict[str, str]:
    """Every plugin name this installation can load, mapped to its ``module:attr``."""
    found = dict(BUILTIN_PLUGINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def resolve_factory(name: str) -> PluginFactory:
    """The factory for ``name``: a ``daz.plugins`` entry point, else a built-in."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                loaded: PluginFactory = ep.load()
            except Exception as exc:
                raise ConfigError(f"plugins.{name}: cannot import {ep.value} ({exc!r})") from exc
            return loaded
    target = BUILTIN_PLUGINS.get(name)
    if target is None:
        known = ", ".join(sorted(available_plugins()))
        raise ConfigError(
            f"plugins.{name}: no such plugin (known: {known}); install its package or fix the name"
        )
    module, _, attr = target.partition(":")
    factory: PluginFactory = getattr(importlib.import_module(module), attr)
    return factory


def enabled_sections(sections: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The plugin sections that are switched on, with the host's own keys removed."""
    result: dict[str, dict[str, Any]] = {}
    for name, section in sections.items():
        if not isinstance(section, Mapping):
            raise ConfigError(f"plugins.{name}: must be an object of settings (got {type(section).__name__})")
        enabled = section.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"plugins.{name}.enabled: must be true or false (got {enabled!r})")
        if enabled:
            result[name] = {k: v for k, v in section.items() if k not in HOST_KEYS}
    return result


def plugin_problems(sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every problem in the plugins section, one line each, without starting any plugin.

    Each enabled plugin is built once from its section (so its own settings model validates it)
    and the dependency order is checked; used by ``daz config check``.
    """
    try:
        enabled = enabled_sections(sections)
    except ConfigError as exc:
        return list(exc.problems)
    problems: list[str] = []
    deps: dict[str, tuple[str, ...]] = {}
    for name, section in enabled.items():
        try:
            plugin = resolve_factory(name)(section)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        deps[name] = tuple(getattr(plugin, "depends_on", ()))
    if not problems:
        try:
            order_plugins(deps)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


class _Crash(Exception):
    """Carries a handler's exception out of the plugin's task group."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


class PluginHost:
    """A ``Service`` running every enabled plugin under supervision."""

    name = "plugins"

    def __init__(
        self,
        sections: Mapping[str, Mapping[str, Any]],
        *,
        bus: EventBus,
        clock: Clock,
        metrics: DazMetrics,
        rng: random.Random | None = None,
        sql: SqlApi | None = None,
        rooms: SendApi | None = None,
        actions: RoomActions | None = None,
        status: StatusSource | None = None,
        factories: Mapping[str, PluginFactory] | None = None,
        policy: RestartPolicy | None = None,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        statuses: PluginStatuses | None = None,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.metrics = metrics
        self.rng = rng if rng is not None else random.Random()
        self.sql = sql
        self.rooms = rooms
        self.actions = actions
        self.status_source = status
        self.policy = policy if policy is not None else RestartPolicy()
        self.stop_grace_seconds = stop_grace_seconds
        self.started_at = clock.monotonic()
        self.commands = CommandRegistry()
        self.sections = enabled_sections(sections)
        given = dict(factories or {})
        self._factories = {n: given[n] if n in given else resolve_factory(n) for n in self.sections}
        # Build one instance of each now so configuration errors surface before anything starts.
        self._first: dict[str, Plugin] = {n: self._build(n) for n in self.sections}
        self.order = order_plugins({n: tuple(p.depends_on) for n, p in self._first.items()})
        # The board may be given (the app builds health and !status on it before the host).
        self.statuses = statuses if statuses is not None else PluginStatuses(clock)
        self._announce = StateChangeHook(bus=bus, metrics=metrics)
        for name in self.order:
            self._announce.initial(PLUGIN, name, self.statuses.add(name).state.value)
        self._stops = {n: asyncio.Event() for n in self.order}
        self._started = {n: asyncio.Event() for n in self.order}
        self._stopped = {n: asyncio.Event() for n in self.order}

    def _build(self, name: str) -> Plugin:
        plugin = self._factories[name](self.sections[name])
        if not isinstance(plugin, Plugin):
            raise ConfigError(f"plugins.{name}: {plugin!r} does not implement the Plugin protocol")
        plugin.name = name
        return plugin

    async def wait_started(self) -> None:
        """Return once every plugin has been set up (or has crashed trying)."""
        for name in self.order:
            await self._started[name].wait()

    def status_list(self) -> list[dict[str, Any]]:
        return self.statuses.status_list()

    def verdicts(self) -> dict[str, str]:
        return self.statuses.verdicts()

    async def run(self, stopping: asyncio.Event) -> None:
        tasks: dict[str, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as tg:
            for name in self.order:
                tasks[name] = tg.create_task(self._supervise(name), name=f"plugin.{name}")
                # Dependents start only once their dependencies have been set up (or crashed).
                await wait_any(self._started[name], stopping, label=f"plugin.{name}.start_wait")
            await stopping.wait()
            # Stop dependents first so a plugin never outlives what it depends on.
            for name in reversed(self.order):
                self._stops[name].set()
                try:
                    async with asyncio.timeout(self.stop_grace_seconds):
                        await self._stopped[name].wait()
                except TimeoutError:
                    log.warning("plugin.stop_timeout", plugin=name, grace_seconds=self.stop_grace_seconds)
                    tasks[name].cancel()

    def _transition(self, status: PluginStatus, to: PluginState, reason: str) -> None:
        check_transition(status.state, to)
        before, status.state = status.state, to
        self._announce(StateChange(
            PLUGIN, status.name, before.value, to.value, reason,
            details={"restarts": status.restarts, "next_delay": status.next_delay},
            warn=to is PluginState.BACKING_OFF,
        ))

    async def _supervise(self, name: str) -> None:
        status = self.statuses[name]
        stop = self._stops[name]
        plugin: Plugin | None = self._first.pop(name, None)
        try:
            while not stop.is_set():
                if plugin is None:
                    plugin = self._build(name)
                began = self.clock.monotonic()
                error = await self._run_once(name, plugin, status, stop)
                plugin = None
                if error is None:
                    break
                now = self.clock.monotonic()
                if now - began >= self.policy.stable_after_seconds:
                    status.consecutive_crashes = 0
                status.consecutive_crashes += 1
                status.restarts += 1
                status.last_error = f"{type(error).__name__}: {error}"
                status.last_crash_at = now
                status.next_delay = restart_delay(status.consecutive_crashes, self.rng, self.policy)
                self.metrics.plugin_restarts.labels(plugin=name).inc()
                log.error("plugin.crashed", plugin=name, error=status.last_error,
                          restarts=status.restarts, next_delay=round(status.next_delay, 3))
                self.bus.publish("plugin.crashed", {"plugin": name, "error": status.last_error,
                                                    "restarts": status.restarts,
                                                    "next_delay": status.next_delay}, source="plugins")
                self._transition(status, PluginState.BACKING_OFF, "crashed")
                self._started[name].set()
                await sleep_or_stop(self.clock, status.next_delay, stop, label=f"plugin.{name}.backoff")
        finally:
            status.next_delay = None
            self._started[name].set()
            if status.state is not PluginState.STOPPED:
                self._transition(status, PluginState.STOPPED, "stopping")
            self._stopped[name].set()

    async def _run_once(
        self, name: str, plugin: Plugin, status: PluginStatus, stop: asyncio.Event
    ) -> Exception | None:
        """Set up and run one instance; the exception that ended it, or None for a clean stop."""
        crashed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        def on_handler_error(exc: BaseException) -> None:
            if not crashed.done():
                crashed.set_result(exc)

        ctx = PluginContext(
            name=name, bus=self.bus, clock=self.clock, metrics=self.metrics,
            log=structlog.get_logger(f"daz.plugins.{name}"), config=self.sections[name],
            sql=self.sql, rooms=self.rooms, actions=self.actions, status=self.status_source,
            started_at=self.started_at,
            channels=self.rooms if isinstance(self.rooms, ChannelApi) else None,
            on_handler_error=on_handler_error, commands=self.commands,
        )
        if status.state is not PluginState.STARTING:
            self._transition(status, PluginState.STARTING, "restart")
        error: Exception | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                watcher = tg.create_task(_raise_on_crash(crashed), name=f"plugin.{name}.watch")
                await plugin.setup(ctx)
                status.next_delay = None
                self._transition(status, PluginState.RUNNING, "started")
                self._started[name].set()
                await plugin.run(stop)
                watcher.cancel()
        except* Exception as group:  # noqa: BLE001 - a plugin's crash must never reach the bot
            error = _first_exception(group)
        finally:
            ctx.close()
        return error


async def _raise_on_crash(crashed: asyncio.Future[BaseException]) -> None:
    raise _Crash(await crashed)


def _first_exception(group: BaseExceptionGroup[Exception]) -> Exception:
    """The plugin's own exception: a handler crash is preferred over the run it interrupted."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            flat.append(exc)
    for exc in flat:
        if isinstance(exc, _Crash):
            return exc.cause if isinstance(exc.cause, Exception) else RuntimeError(repr(exc.cause))
    first = flat[0] if flat else group
    return first if isinstance(first, Exception) else RuntimeError(repr(first))
