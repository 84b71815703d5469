"""``BreakerRegistry``: one ``CircuitBreaker`` per dependency name, created on first use.

A name's settings come from ``config.breakers``: the exact name (``cytube:lobby``), else its family
before the colon (``cytube``), else ``default``. Operators act only on breakers that exist or are
configured, so an HTTP caller cannot mint metric label values.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from daz.clock import Clock
from daz.config import BreakerConfig, DazConfig
from daz.errors import UnknownBreaker
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.resilience.breaker import CircuitBreaker
from daz.resilience.machine import Trigger

log = structlog.get_logger("daz.resilience")

OPERATOR_ACTION = "breaker.operator_action"
DEFAULT_BREAKER = "default"
# Config keys that give settings to a family of breakers (``cytube:<room>``) rather than name one.
FAMILIES = frozenset({"cytube", "http"})
ACTIONS = {"open": Trigger.FORCE_OPEN, "close": Trigger.FORCE_CLOSE, "reset": Trigger.RESET,
           "disable": Trigger.DISABLE}


class BreakerRegistry:
    def __init__(
        self,
        config: DazConfig | Mapping[str, BreakerConfig],
        bus: EventBus | None,
        metrics: DazMetrics | None,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._configs: Mapping[str, BreakerConfig] = (
            config.breakers if isinstance(config, DazConfig) else dict(config)
        )
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self._rng = rng
        self._breakers: dict[str, CircuitBreaker] = {}
        self._on_create: list[Callable[[CircuitBreaker], None]] = []

    def config_for(self, name: str) -> BreakerConfig:
        family = name.split(":", 1)[0]
        for key in (name, family, DEFAULT_BREAKER):
            if key in self._configs:
                return self._configs[key]
        return BreakerConfig()

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, self.config_for(name), clock=self._clock, rng=self._rng,
                                     bus=self._bus, metrics=self._metrics)
            self._breakers[name] = breaker
            for callback in self._on_create:
                callback(breaker)
        return breaker

    def existing(self) -> list[CircuitBreaker]:
        """The breakers created so far."""
        return list(self._breakers.values())

    def on_create(self, callback: Callable[[CircuitBreaker], None]) -> None:
        """Call ``callback(breaker)`` for every breaker created from now on (see ``existing``)."""
        self._on_create.append(callback)

    def names(self) -> list[str]:
        """Breakers in use plus configured names (not families or ``default``), sorted."""
        configured = {n for n in self._configs if n != DEFAULT_BREAKER and n not in FAMILIES}
        return sorted(set(self._breakers) | configured)

    def snapshot(self) -> list[dict[str, Any]]:
        return [self.get(name).snapshot() for name in self.names()]

    def force_open(self, name: str) -> CircuitBreaker:
        return self._operate(name, Trigger.FORCE_OPEN)

    def force_close(self, name: str) -> CircuitBreaker:
        return self._operate(name, Trigger.FORCE_CLOSE)

    def disable(self, name: str) -> CircuitBreaker:
        return self._operate(name, Trigger.DISABLE)

    def reset(self, name: str) -> CircuitBreaker:
        return self._operate(name, Trigger.RESET)

    def act(self, name: str, action: str) -> None:
        """An operator action by its API name: ``open``, ``close``, ``reset`` or ``disable``.

        Shaped for ``daz.health.sources.StatusSources.breaker_action``.
        """
        trigger = ACTIONS.get(action)
        if trigger is None:
            raise ValueError(f"unknown breaker action '{action}'; expected one of {', '.join(ACTIONS)}")
        self._operate(name, trigger)

    def _operate(self, name: str, trigger: Trigger) -> CircuitBreaker:
        if name not in self._breakers and name not in self.names():
            known = ", ".join(self.names()) or "none"
            raise UnknownBreaker(f"no circuit breaker named '{name}'; known: {known}")
        breaker = self.get(name)
        before = breaker.state
        breaker.operate(trigger)
        log.warning("breaker.operator_action", breaker=name, action=trigger.value,
                    from_state=before.value, to_state=breaker.state.value)
        if self._bus is not None:
            self._bus.publish(OPERATOR_ACTION, {"name": name, "action": trigger.value, "from": before.value,
                                                "to": breaker.state.value}, source="operator")
        return breaker
