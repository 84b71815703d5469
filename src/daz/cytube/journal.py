"""The durable outbox: unsent lines as ``cytube_command`` items in the retry store.

The room's in-memory outbox delivers lines in order; the store item exists so a line survives a
process restart (``load`` restores it) and so a line that cannot be delivered ends up visible in the
queue and, in the end, the dead-letter queue with its reason. An item becomes due only after
``hold_seconds``: the queue does not touch lines that are on their way.

``LineRedelivery`` is the queue's ``cytube_command`` handler (it puts an overdue line back into its
room's outbox and waits for the echo). ``RoomAvailabilityGate`` wraps the queue's attempt gate:
while a line's room is not READY here (or not owned by this instance in a cluster), the item is
deferred WITHOUT charging an attempt, so a long outage never turns queued lines into dead letters.
Attempts are charged only when the room is READY and the line still is not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterator
from datetime import timedelta
from typing import Protocol

import structlog

from daz.clock import Clock
from daz.cytube.outbox import OutboundLine
from daz.cytube.states import RoomState
from daz.errors import DazError, StoreError
from daz.events.bus import Event
from daz.retry.policy import RetryPolicy
from daz.retry.worker import AttemptGate
from daz.store.base import NewItem, QueueItem, RetryStore

log = structlog.get_logger("daz.cytube")

CYTUBE_COMMAND = "cytube_command"
LINE_KEY_PREFIX = "line:"
JOURNAL_LOAD_LIMIT = 10_000
ROOM_DOWN_DEFER_SECONDS = 5.0


class LineDelivery(Protocol):
    """What the journal needs from the room manager."""

    def rooms(self) -> list[str]: ...
    def room_state(self, room: str) -> RoomState: ...
    def holds(self, room: str) -> bool: ...
    def has_line(self, room: str, key: str) -> bool: ...
    def delivered(self, room: str, key: str) -> bool: ...
    async def resend(self, line: OutboundLine) -> None: ...


class StoreJournal:
    """``OutboundJournal`` on the retry store."""

    def __init__(self, store: RetryStore, clock: Clock, *, hold_seconds: float, max_retries: int) -> None:
        self.store = store
        self.clock = clock
        self.hold_seconds = hold_seconds
        self.max_retries = max_retries
        self._waiters: dict[str, asyncio.Event] = {}

    def _item(self, line: OutboundLine) -> NewItem:
        return NewItem(
            operation_type=CYTUBE_COMMAND,
            payload={"room": line.room, "kind": line.kind, "text": line.text, "to": line.to,
                     "key": line.key, "created_at": line.created_at,
                     **({"action": dict(line.action)} if line.action is not None else {})},
            target=line.room, event_type=f"cytube.{line.kind}", correlation_id=line.correlation_id,
            idempotency_key=LINE_KEY_PREFIX + line.key, max_retries=self.max_retries,
            retry_after=self.clock.now() + timedelta(seconds=self.hold_seconds),
        )

    async def save(self, line: OutboundLine) -> None:
        try:
            await self.store.schedule([self._item(line)])
        except StoreError as exc:
            # The line is still in the room's memory outbox and will be sent; only its
            # survival across a restart is lost while the store is down.
            log.warning("journal.save_failed", room=line.room, key=line.key, error=str(exc))

    async def hand_off(self, line: OutboundLine) -> None:
        """A line for a room another instance holds: the same pending item, and nothing else here.

        The insert's NOTIFY wakes every instance's ``HandoffPuller``; the owner's pulls it into the
        room's outbox at once. The hold still applies to the retry queue: it stays the safety net.
        Unlike ``save`` a failure propagates: no local copy would ever send the line.
        """
        await self.store.schedule([self._item(line)])

    async def pending(self, rooms: Collection[str]) -> list[OutboundLine]:
        """Every undelivered line for ``rooms``, in store (id) order."""
        items = await self.store.list(status="pending", operation_type=CYTUBE_COMMAND,
                                      limit=JOURNAL_LOAD_LIMIT)
        lines = [line_from(item) for item in sorted(items, key=lambda i: i.id) if item.target in rooms]
        return [line for line in lines if line is not None]

    async def ack(self, key: str) -> None:
        waiter = self._waiters.get(key)
        if waiter is not None:
            waiter.set()  # a queue attempt is waiting for this line: it completes the item itself
            return
        try:
            await self.store.ack_pending(LINE_KEY_PREFIX + key)
        except StoreError as exc:
            log.warning("journal.ack_failed", key=key, error=str(exc))

    async def on_line_delivered(self, event: Event) -> None:
        """``room.line.delivered``: the echo confirmed the line, so its item (if the outbox has not
        acked it itself) must not be run by the queue."""
        key = event.data.get("key") if isinstance(event.data, dict) else None
        if key:
            await self.ack(str(key))

    async def load(self, room: str) -> list[OutboundLine]:
        try:
            items = await self.store.list(status="pending", operation_type=CYTUBE_COMMAND,
                                          limit=JOURNAL_LOAD_LIMIT)
        except StoreError as exc:
            log.warning("journal.load_failed", room=room, error=str(exc))
            return []
        lines = [line_from(item) for item in sorted(items, key=lambda i: i.id) if item.target == room]
        return [line for line in lines if line is not None]

    @contextlib.contextmanager
    def awaiting_ack(self, key: str) -> Iterator[asyncio.Event]:
        """While open, ``ack(key)`` sets the returned event instead of completing the item: the
        queue attempt holding it completes the item itself."""
        waiter = self._waiters.setdefault(key, asyncio.Event())
        try:
            yield waiter
        finally:
            self._waiters.pop(key, None)


class LineRedelivery:
    """The queue's ``cytube_command`` handler: a line still undelivered after ``hold_seconds`` (or
    replayed from the dead letters).

    Kept apart from ``StoreJournal`` because the rooms need the journal to be built, and this needs
    the rooms: the app builds journal → rooms → redelivery, with no object patched into another.
    """

    def __init__(self, journal: StoreJournal, rooms: LineDelivery) -> None:
        self.journal = journal
        self.rooms = rooms

    async def handle(self, item: QueueItem) -> None:
        """The room is READY here (the gate deferred the item otherwise). If the line is not in the
        room's outbox any more (a previous process, a replay, or the room gave up on it after echo
        timeouts) it goes back in; then the attempt waits for its echo. Success completes the item;
        a timeout raises a retryable error and the policy decides.
        """
        line = line_from(item)
        if line is None:
            raise DazError(f"queue item {item.id} is not a chat line", retryable=False,
                           correlation_id=item.correlation_id, operation_type=CYTUBE_COMMAND)
        rooms = self.rooms
        if line.room not in rooms.rooms():
            raise DazError(f"room {line.room} is not configured here", retryable=False,
                           correlation_id=item.correlation_id, operation_type=CYTUBE_COMMAND)
        if rooms.delivered(line.room, line.key):
            return  # delivered here moments ago; its ack had not reached the store yet
        with self.journal.awaiting_ack(line.key) as waiter:
            if not rooms.has_line(line.room, line.key):
                await rooms.resend(line)
            await waiter.wait()  # bounded by the policy's timeout, applied by the worker


class RoomAvailabilityGate:
    """Defers ``cytube_command`` items while their room is not READY here; delegates the rest."""

    def __init__(self, inner: AttemptGate | None, rooms: LineDelivery) -> None:
        self.inner = inner
        self.rooms = rooms
        self.deferred = 0

    def before_attempt(self, item: QueueItem, policy: RetryPolicy) -> float | None:
        if item.operation_type == CYTUBE_COMMAND:
            rooms = self.rooms
            room = item.target or ""
            if room in rooms.rooms() and (
                not rooms.holds(room) or rooms.room_state(room) is not RoomState.READY
            ):
                self.deferred += 1
                return ROOM_DOWN_DEFER_SECONDS
        return self.inner.before_attempt(item, policy) if self.inner is not None else None

    def record(self, item: QueueItem, policy: RetryPolicy, outcome: BaseException | None,
               duration: float) -> None:
        if self.inner is not None:
            self.inner.record(item, policy, outcome, duration)


def line_from(item: QueueItem) -> OutboundLine | None:
    p = item.payload
    try:
        kind = p.get("kind")
        action = p.get("action") if kind == "action" else None
        if kind == "action" and not isinstance(action, dict):
            log.warning("journal.bad_item", id=item.id)  # an action line without its action record
            return None
        return OutboundLine(key=str(p["key"]), room=str(p["room"]),
                            kind=kind if kind in ("pm", "action") else "chat", text=str(p["text"]),
                            to=p.get("to"), correlation_id=item.correlation_id,
                            created_at=float(p.get("created_at", 0.0)), action=action)
    except (KeyError, TypeError, ValueError):
        log.warning("journal.bad_item", id=item.id)
        return None
