"""Real sockets: daz's RoomManager against daz.testing.fake_cytube on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from daz.clock import SystemClock
from daz.config import CytubeConfig, DazConfig, ProbeConfig, RoomConfig, ServerLimitsConfig
from daz.cytube.rooms import RoomManager
from daz.cytube.states import RoomState
from daz.events.bus import Event, EventBus
from daz.metrics import DazMetrics
from daz.testing.fake_cytube import FakeCytubeServer
from daz.transport.socketio import socketio_transport_factory


@dataclass
class Live:
    server: FakeCytubeServer
    bus: EventBus
    manager: RoomManager
    metrics: DazMetrics
    events: list[Event]

    def status(self, room: str = "lobby") -> Any:
        return self.manager.room(room)

    async def until(self, predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "") -> float:
        """Poll ``predicate`` every 20 ms (bounded); returns the seconds it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)
        return loop.time() - started

    async def state(self, state: RoomState, room: str = "lobby", timeout: float = 10.0) -> float:
        return await self.until(lambda: self.status(room).state is state, timeout=timeout, what=state.value)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.name == name]


def fast_cytube(**overrides: Any) -> CytubeConfig:
    values: dict[str, Any] = {
        "join_timeout_seconds": 3,
        "login_timeout_seconds": 3,
        "connect_timeout_seconds": 3,
        "liveness_margin_seconds": 0.2,
        "delivery_timeout_seconds": 3,
        "backoff": {"base_seconds": 0.2, "max_seconds": 1.0},
        "probe": ProbeConfig(enabled=False),
    }
    values.update(overrides)
    return CytubeConfig(**values)


def mirrored_limits(server: FakeCytubeServer, **overrides: Any) -> ServerLimitsConfig:
    """daz configured with the limits the fake server enforces, as an operator would configure the
    numbers of their CyTube server."""
    limits = server.limits
    values: dict[str, Any] = {
        "connection_burst": limits.bucket_size,
        "connection_refill_seconds": limits.refill_seconds,
        "max_sockets": limits.max_sockets_per_ip,
        "guest_login_window_seconds": limits.guest_login_window_seconds,
        "token_margin_seconds": min(0.25, limits.refill_seconds / 20),
    }
    if not limits.enabled:  # a fake with its limits off: nothing to mirror
        values.update(connection_burst=1_000_000, max_sockets=1_000_000, guest_login_window_seconds=0)
    values.update(overrides)
    return ServerLimitsConfig(**values)


@contextlib.asynccontextmanager
async def live(
    server: FakeCytubeServer,
    rooms: list[RoomConfig] | None = None,
    cytube: CytubeConfig | None = None,
    before: Callable[[Live], Awaitable[None]] | None = None,
) -> AsyncIterator[Live]:
    metrics = DazMetrics()
    rooms = rooms or [RoomConfig(channel="lobby", username="dazbot", server_url=server.url)]
    cytube = cytube or fast_cytube()
    if "servers" not in cytube.model_fields_set:
        cytube = cytube.model_copy(update={"servers": {"default": mirrored_limits(server)}})
    config = DazConfig(rooms=rooms, cytube=cytube)
    clock = SystemClock()
    async with EventBus(clock=clock, metrics=metrics) as bus, bus.recording("**") as events:
        manager = RoomManager(config, bus, metrics, clock, random.Random(5), socketio_transport_factory)
        state = Live(server, bus, manager, metrics, events)
        if before is not None:
            await before(state)
        stopping = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(manager.run(stopping), name="test.rooms")
            try:
                yield state
            finally:
                stopping.set()
