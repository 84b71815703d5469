"""The one way a state machine announces a transition: bus event, log line and gauge from one record.

Every state machine in daz (a room, a circuit breaker, a plugin) decides its next state purely from
its own transition table, then hands the decided move to :class:`StateChangeHook` as a
:class:`StateChange`. The hook sets the machine's state gauge, writes the structured log line and
publishes ``<kind>.state_changed`` on the bus, so the three never drift apart: a dashboard, a log
search and a bus subscriber all see the same move with the same reason.

Names are part of the public surface (docs/events.md, docs/observability.md) and stay as they were:
the event data names the machine under ``room`` / ``name`` / ``plugin``, the log line under ``room``
/ ``breaker`` / ``plugin``, and the states are the enum values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import Gauge

from daz.events.bus import EventBus
from daz.metrics import BREAKER_STATE_CODES, PLUGIN_STATE_CODES, ROOM_STATE_CODES, DazMetrics


@dataclass(frozen=True, slots=True)
class MachineKind:
    """How one kind of state machine is announced."""

    kind: str  # the event is ``<kind>.state_changed``
    event_field: str  # the key naming the machine in the event data
    log_field: str  # the key naming the machine in the log line
    logger: str
    gauge: Callable[[DazMetrics], Gauge]  # the state gauge, labelled by the machine's name
    codes: Mapping[str, int]  # state value → gauge value (documented in docs/observability.md)
    event_source: Callable[[str], str]  # the bus event's ``source`` for a machine name

    @property
    def event(self) -> str:
        return f"{self.kind}.state_changed"


ROOM = MachineKind("room", "room", "room", "daz.cytube", lambda m: m.room_state, ROOM_STATE_CODES,
                   lambda _name: "cytube")
BREAKER = MachineKind("breaker", "name", "breaker", "daz.resilience", lambda m: m.breaker_state,
                      BREAKER_STATE_CODES, lambda name: f"breaker:{name}")
PLUGIN = MachineKind("plugin", "plugin", "plugin", "daz.plugins", lambda m: m.plugin_state,
                     PLUGIN_STATE_CODES, lambda _name: "plugins")


@dataclass(frozen=True, slots=True)
class StateChange:
    """One decided transition. ``details`` are the machine's own extra fields (attempt, rates, …),
    added to both the event data and the log line; ``log_details`` go to the log line only;
    ``warn`` logs it at warning level."""

    kind: MachineKind
    name: str
    old: str
    new: str
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)
    log_details: Mapping[str, Any] = field(default_factory=dict)
    warn: bool = False


class StateChangeHook:
    """Announces :class:`StateChange` records. Without a bus or metrics, that part is skipped (a
    breaker used on its own has neither)."""

    def __init__(self, *, bus: EventBus | None, metrics: DazMetrics | None) -> None:
        self.bus = bus
        self.metrics = metrics

    def initial(self, kind: MachineKind, name: str, state: str) -> None:
        """Set the gauge for a machine that starts in ``state`` (no transition, so no event)."""
        self._gauge(kind, name, state)

    def __call__(self, change: StateChange) -> None:
        kind = change.kind
        self._gauge(kind, change.name, change.new)
        logger = structlog.get_logger(kind.logger)
        emit = logger.warning if change.warn else logger.info
        emit(kind.event, **{kind.log_field: change.name}, from_state=change.old, to_state=change.new,
             reason=change.reason, **change.details, **change.log_details)
        if self.bus is not None:
            data = {kind.event_field: change.name, "from": change.old, "to": change.new,
                    "reason": change.reason, **change.details}
            self.bus.publish(kind.event, data, source=kind.event_source(change.name))

    def _gauge(self, kind: MachineKind, name: str, state: str) -> None:
        if self.metrics is not None:
            kind.gauge(self.metrics).labels(name).set(kind.codes[state])
