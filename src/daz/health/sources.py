"""What health reads from the rest of daz, as small protocols and plain snapshots.

``health/`` never imports the rooms, the store, the SQL service or resilience: ``app.py`` hands it
callables that return these views (see docs/internal-contracts.md §7).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, TypeVar, cast

T = TypeVar("T")


class RoomView(Protocol):
    """The read-only room status (``daz.cytube`` ``RoomStatus``, contract §2). Times are monotonic."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> Any: ...  # RoomState enum (its ``.value`` is lower-case) or a plain string
    @property
    def state_since(self) -> float: ...
    @property
    def attempt(self) -> int: ...
    @property
    def last_frame_at(self) -> float | None: ...
    @property
    def ping_interval(self) -> float | None: ...  # None until the Engine.IO handshake told us
    @property
    def ping_timeout(self) -> float | None: ...
    @property
    def media_playing(self) -> bool: ...
    @property
    def last_media_update_at(self) -> float | None: ...
    @property
    def flaps_in_window(self) -> int: ...
    @property
    def degraded(self) -> bool: ...
    @property
    def kicked_reason(self) -> str | None: ...
    @property
    def connected_since(self) -> float | None: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def outbox_depth(self) -> int: ...


def state_name(state: Any) -> str:
    """``RoomState.READY`` → ``"ready"``; strings pass through lower-cased."""
    value = getattr(state, "value", state)
    return str(value).lower()


def room_row(room: RoomView) -> dict[str, Any]:
    """One room as plain data for ``GET /api/rooms`` (``daz rooms``)."""
    return {
        "name": room.name,
        "state": state_name(room.state),
        "reason": getattr(room, "reason", "") or "",
        "attempt": room.attempt,
        "server": getattr(room, "server", None),
        "reconnects": room.reconnects,
        "refusals": getattr(room, "refusals", 0),
        "next_delay": getattr(room, "next_delay", None),
    }


@dataclass(frozen=True, slots=True)
class PoolView:
    """Connection-pool figures (``daz.db.pool``)."""

    size: int
    in_use: int
    waiting: int
    max_size: int
    health_score_min: float | None = None
    health_score_avg: float | None = None


@dataclass(frozen=True, slots=True)
class QueueView:
    """Retry-queue figures: item counts by status and the ages that matter."""

    depth: Mapping[str, int]
    oldest_pending_age_seconds: float | None
    dead_letters_last_hour: int
    reclaims: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    id: int
    operation_type: str
    correlation_id: str | None
    attempt: int
    last_error: str | None
    updated_at: str | None  # RFC 3339


MaybeAwaitable: TypeAlias = T | Awaitable[T]
RoomsSource = Callable[[], Sequence[RoomView]]
QueueSource = Callable[[], MaybeAwaitable[QueueView]]
DeadLettersSource = Callable[[int], MaybeAwaitable[Sequence[DeadLetterView]]]
BreakersSource = Callable[[], MaybeAwaitable[Sequence[Mapping[str, Any]]]]
PoolSource = Callable[[], MaybeAwaitable[PoolView | None]]
SpoolSource = Callable[[], MaybeAwaitable[int]]
InstancesSource = Callable[[], MaybeAwaitable[Sequence[Mapping[str, Any]]]]
# A room's channel as plain data (``daz.cytube.channel.summary``), None before its first join.
ChannelSource = Callable[[str], Mapping[str, Any] | None]
BreakerAction = Callable[[str, str], MaybeAwaitable[None]]  # (name, "open" | "close" | "reset")
ReplayAction = Callable[[int], MaybeAwaitable[bool]]  # False: no such dead letter
RoomAction = Callable[[str, str], MaybeAwaitable[None]]  # (room, "restart" | "stop"); KeyError: no room
ROOM_ACTIONS = ("restart", "stop")


async def resolve(value: MaybeAwaitable[T]) -> T:
    """Await ``value`` if it is awaitable (sources may be sync or async)."""
    if inspect.isawaitable(value):
        return cast(T, await value)
    return value


@dataclass(slots=True)
class StatusSources:
    """Everything the status page and admin API may read or do; absent ones are simply not shown."""

    rooms: RoomsSource | None = None
    queue: QueueSource | None = None
    dead_letters: DeadLettersSource | None = None
    breakers: BreakersSource | None = None
    spool: SpoolSource | None = None
    instances: InstancesSource | None = None
    channels: ChannelSource | None = None
    breaker_action: BreakerAction | None = None
    replay: ReplayAction | None = None
    room_action: RoomAction | None = None
    extra: dict[str, Any] = field(default_factory=dict)
