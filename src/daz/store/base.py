"""The retry store seam: the records it keeps and the protocol every backend implements.

Three implementations follow this protocol exactly (PostgreSQL, SQLite, and the in-memory one in
``daz.testing``); ``tests/contract/`` runs one behaviour suite against all of them. Stores take
"now" from an injected ``Clock`` rather than the database's clock, so lease expiry and due times
are testable with ``FakeClock`` on every backend alike.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

DEFAULT_MAX_RETRIES = 3
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_LIST_LIMIT = 100


class ItemStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    # Kept because operators' queries name it; daz itself never parks an item here.
    FAILED = "failed"
    DEAD_LETTER = "dead_letter"


STATUSES: tuple[str, ...] = tuple(s.value for s in ItemStatus)
# What ``purge`` removes when no status is given: items that will never run again.
TERMINAL_STATUSES: tuple[str, ...] = (ItemStatus.COMPLETED, ItemStatus.FAILED, ItemStatus.DEAD_LETTER)
REQUEUEABLE_STATUSES: tuple[str, ...] = (ItemStatus.DEAD_LETTER, ItemStatus.FAILED)


@dataclass(frozen=True, slots=True)
class NewItem:
    """What ``schedule`` takes. ``None`` fields get the store's (or the retry queue's) defaults."""

    operation_type: str
    payload: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    event_type: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    priority: int = 0
    max_retries: int | None = None
    retry_after: datetime | None = None
    timeout_seconds: float | None = None


class ResolvedItem(NamedTuple):
    """A ``NewItem`` with its defaults applied: what every store inserts. (A tuple: built once per
    item on the enqueue path, where a frozen dataclass's construction cost showed in the benchmark.)"""

    operation_type: str
    payload: dict[str, Any]
    target: str | None
    event_type: str | None
    correlation_id: str
    idempotency_key: str | None
    priority: int
    max_retries: int
    retry_after: datetime
    timeout_seconds: float


def with_defaults(item: NewItem, now: datetime) -> ResolvedItem:
    """The one place new-item defaults are decided, for every store.

    A fresh correlation id, ``DEFAULT_MAX_RETRIES``, ``DEFAULT_TIMEOUT_SECONDS`` (also for a zero
    timeout, which could never run), and due ``now`` (the store's clock).
    """
    return ResolvedItem(
        item.operation_type,
        item.payload,
        item.target,
        item.event_type,
        item.correlation_id or uuid.uuid4().hex,
        item.idempotency_key,
        item.priority,
        item.max_retries if item.max_retries is not None else DEFAULT_MAX_RETRIES,
        item.retry_after if item.retry_after is not None else now,
        item.timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
    )


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One row of ``daz_retry_queue``. ``reclaimed`` is set on a claim that took over an expired lease."""

    id: int
    correlation_id: str
    idempotency_key: str | None
    operation_type: str
    target: str | None
    event_type: str | None
    payload: dict[str, Any]
    status: str
    priority: int
    attempt: int
    max_retries: int
    retry_after: datetime
    lease_until: datetime | None
    lease_owner: str | None
    fence: int
    timeout_seconds: float
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    deferred_by: str | None = None
    reclaimed: bool = False


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One row of the ``daz_retry_queue_stats`` view."""

    operation_type: str
    status: str
    count: int
    avg_attempts: float
    max_attempts: int
    oldest_pending_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class ClaimedSchedule:
    """What ``schedule_claimed`` returns.

    ``ids`` holds every input item's id in input order (a duplicate idempotency key maps to the item
    that already had it); ``claimed`` holds only the rows this call inserted, already leased.
    """

    ids: list[int]
    claimed: list[QueueItem]


WakeCallback = Callable[[], None]


class RetryStore(Protocol):
    """Durable queue operations. Unreachable → ``StoreUnavailable``; a moved-on fence → ``StaleFence``."""

    backend: str

    async def schedule(self, items: Sequence[NewItem]) -> list[int]:
        """Insert ``items`` in one round-trip; an existing idempotency key returns the existing id."""
        ...

    async def schedule_claimed(
        self, items: Sequence[NewItem], owner: str, lease_seconds: float
    ) -> ClaimedSchedule:
        """Insert ``items`` already claimed by ``owner`` in one round-trip: the local hand-off.

        Each inserted row is exactly what a claim of a fresh row would leave: status processing,
        fence 1, ``lease_owner = owner``, lease until now + ``lease_seconds``, attempt 0. A duplicate
        idempotency key inserts and claims nothing (its id is the existing item's). No wake-up is
        sent: nobody else could claim these rows until the lease expires.
        """
        ...

    async def claim_due(
        self,
        batch: int,
        lease_seconds: float,
        owner: str,
        *,
        operation_types: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
    ) -> list[QueueItem]:
        """Lease up to ``batch`` due items (expired leases first); each claim increments the fence.

        ``targets`` restricts items that HAVE a target to those targets; untargeted items still match.
        """
        ...

    async def heartbeat(self, id: int, fence: int, lease_seconds: float) -> bool:
        """Extend the lease; False when the fence no longer owns the item."""
        ...

    async def complete(self, id: int, fence: int) -> None: ...

    async def complete_many(self, claims: Sequence[tuple[int, int]]) -> list[int]:
        """Complete ``(id, fence)`` pairs in one round-trip; returns the ids whose fence was stale."""
        ...

    async def reschedule(
        self,
        id: int,
        fence: int,
        at: datetime,
        error: str | None,
        *,
        count_attempt: bool = True,
        deferred_by: str | None = None,
    ) -> None: ...

    async def dead_letter(self, id: int, fence: int, reason: str) -> None:
        """Park the item with ``reason`` as its last error; counts the attempt that led here."""
        ...

    async def requeue(
        self,
        *,
        ids: Sequence[int] | None = None,
        operation_type: str | None = None,
        all_dead: bool = False,
    ) -> int:
        """Dead letters back to pending, due now, attempts reset. Returns how many moved."""
        ...

    async def release_deferred(self, breaker_name: str, limit: int) -> int:
        """Make up to ``limit`` items deferred by ``breaker_name`` due now (oldest first)."""
        ...

    async def ack_pending(self, idempotency_key: str) -> bool:
        """Complete an unclaimed pending item by key (its work already happened elsewhere)."""
        ...

    async def purge(self, older_than: timedelta, status: str | None = None) -> int:
        """Delete items last updated before now - ``older_than`` (terminal statuses unless given)."""
        ...

    async def cleanup(self, retention: timedelta) -> int:
        """Delete completed items older than ``retention``."""
        ...

    async def stats(self) -> list[StatsRow]: ...

    async def dead_letters_since(self, since: datetime) -> int:
        """How many items are dead letters last updated at or after ``since``, counted by the store."""
        ...

    async def get(self, id: int) -> QueueItem:
        """The item, or ``ItemNotFound``."""
        ...

    async def list(
        self,
        *,
        status: str | None = None,
        operation_type: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[QueueItem]: ...

    async def next_due_at(self) -> datetime | None:
        """The earliest moment a claim could return something (due time or lease expiry)."""
        ...

    def wakeups(self, on_wake: WakeCallback) -> contextlib.AbstractAsyncContextManager[None]:
        """While entered, call ``on_wake`` when another party schedules or requeues work."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def validate_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status '{status}'; expected one of {', '.join(STATUSES)}")
