"""A room under FakeClock + FakeNetwork, driven step by step."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from daz.config import CytubeConfig, DazConfig, ProbeConfig, RoomConfig
from daz.cytube.outbox import OutboundJournal
from daz.cytube.rooms import RoomManager
from daz.cytube.states import RoomState
from daz.events.bus import Event, EventBus
from daz.metrics import DazMetrics
from daz.testing.clock import FakeClock
from daz.testing.fake_transport import FakeNetwork


@dataclass
class Harness:
    clock: FakeClock
    network: FakeNetwork
    bus: EventBus
    manager: RoomManager
    metrics: DazMetrics
    events: list[Event]
    stopping: asyncio.Event
    task: asyncio.Task[None]

    @property
    def status(self) -> Any:
        return self.manager.room("lobby")

    async def settle(self) -> None:
        await self.clock.advance(0)
        await self.bus.drain(1.0)

    async def until(self, state: RoomState, *, step: float = 0.0, limit: int = 200) -> None:
        for _ in range(limit):
            if self.status.state is state:
                return
            await self.clock.advance(step)
        raise AssertionError(f"room never reached {state.value}; it is {self.status.state.value}")

    async def until_seen(self, state: RoomState, *, step: float = 0.0, limit: int = 200) -> None:
        """Until the room has passed through ``state`` (which may last no time at all)."""
        seen = len([e for e in self.named("room.state_changed") if e["to"] == state.value])
        for _ in range(limit):
            await self.bus.drain(1.0)
            if len([e for e in self.named("room.state_changed") if e["to"] == state.value]) > seen:
                return
            await self.clock.advance(step)
        raise AssertionError(f"room never passed through {state.value}; it is {self.status.state.value}")

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.name == name]


def make_config(**cytube: Any) -> DazConfig:
    cytube.setdefault("probe", ProbeConfig(enabled=False))
    return DazConfig(rooms=[RoomConfig(channel="lobby", username="dazbot")], cytube=CytubeConfig(**cytube))


@contextlib.asynccontextmanager
async def harness(
    config: DazConfig, network: FakeNetwork, seed: int = 42, journal: OutboundJournal | None = None
) -> AsyncIterator[Harness]:
    clock = FakeClock()
    metrics = DazMetrics()
    async with EventBus(clock=clock, metrics=metrics) as bus, bus.recording("**") as events:
        manager = RoomManager(
            config,
            bus,
            metrics,
            clock,
            random.Random(seed),
            network.factory,
            journal,
            endpoint_factory=network.endpoint,
        )
        stopping = asyncio.Event()
        task = asyncio.create_task(manager.run(stopping), name="test.rooms")
        h = Harness(clock, network, bus, manager, metrics, events, stopping, task)
        try:
            await h.settle()
            yield h
        finally:
            stopping.set()
            if not task.done():
                async with asyncio.timeout(2):
                    await task


@pytest.fixture
def network() -> FakeNetwork:
    return FakeNetwork()
