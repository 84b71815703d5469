"""The plugin state machine, as an enum plus a transition table, and the plugin status board.

Like the room (``cytube/states.py``) and the breaker (``resilience/machine.py``), the plugin host
decides a move against :data:`TRANSITIONS` before it does anything, and a move the table does not
allow raises ``IllegalTransition`` (a bug in the host, not a plugin failure). The host then
announces the move through the shared state-change hook (event, log line, ``daz_plugin_state``).

``PluginStatuses`` is the board the host writes and health and ``!status`` read. It exists apart
from the host so the health check and the status line can be built before the host, which needs
the status line: the app builds all three in dependency order without patching one into another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from daz.clock import Clock
from daz.errors import IllegalTransition

RECENT_CRASH_WINDOW_SECONDS = 300.0


class PluginState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"


_S = PluginState
TRANSITIONS: dict[PluginState, frozenset[PluginState]] = {
    # setup finished → RUNNING; setup raised → BACKING_OFF; stopped before setup finished → STOPPED
    _S.STARTING: frozenset({_S.RUNNING, _S.BACKING_OFF, _S.STOPPED}),
    _S.RUNNING: frozenset({_S.BACKING_OFF, _S.STOPPED}),
    # the backoff delay elapsed → a fresh instance STARTING; stopped while waiting → STOPPED
    _S.BACKING_OFF: frozenset({_S.STARTING, _S.STOPPED}),
    # a stopped plugin is never started again by the host (a new host starts from STARTING)
    _S.STOPPED: frozenset(),
}


def check_transition(current: PluginState, target: PluginState) -> None:
    """Raise ``IllegalTransition`` unless the table allows ``current → target``."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"plugin state {current.value} → {target.value} is not allowed")


@dataclass
class PluginStatus:
    """What health and the status page read about one plugin."""

    name: str
    state: PluginState = PluginState.STARTING
    restarts: int = 0
    consecutive_crashes: int = 0
    last_error: str | None = None
    last_crash_at: float | None = None
    next_delay: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state.value, "restarts": self.restarts,
            "last_error": self.last_error, "next_delay": self.next_delay,
        }


def plugin_verdict(status: PluginStatus, now: float, window: float = RECENT_CRASH_WINDOW_SECONDS) -> str:
    """``pass`` / ``warn`` / ``fail`` for one plugin. Pure.

    Backing off (down right now) is ``fail``; running but crashed within ``window`` is ``warn``.
    """
    if status.state is PluginState.BACKING_OFF:
        return "fail"
    if status.last_crash_at is not None and now - status.last_crash_at < window:
        return "warn"
    return "pass"


class PluginStatuses(Mapping[str, PluginStatus]):
    """Every plugin's status in start order (written by ``PluginHost``; read-only to the rest)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._by_name: dict[str, PluginStatus] = {}

    def add(self, name: str) -> PluginStatus:
        status = self._by_name[name] = PluginStatus(name)
        return status

    def __getitem__(self, name: str) -> PluginStatus:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def verdicts(self) -> dict[str, str]:
        now = self.clock.monotonic()
        return {name: plugin_verdict(status, now) for name, status in self._by_name.items()}

    def status_list(self) -> list[dict[str, Any]]:
        return [status.as_dict() for status in self._by_name.values()]
