"""Per-room ordered outbox of lines not yet confirmed by their echo, and its durability seam.

A line stays in the outbox from ``send_chat`` until the server echoes it back (the only proof of
delivery CyTube gives). ``OutboundJournal`` makes the outbox durable: the in-memory journal here
is the default; ``app.py`` wires a RetryStore-backed one. The journal sees ``save`` when a line is
accepted and ``ack`` when it is delivered (or abandoned), so after a restart ``load`` returns
exactly the lines that still need sending, in order.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from daz.errors import DazError


class OutboxFull(DazError):
    """The room's outbox holds ``outbound_buffer_size`` lines already; the line was not accepted."""

    retryable = True


@dataclass(frozen=True, slots=True)
class OutboundLine:
    key: str
    room: str
    kind: Literal["chat", "pm", "action"]
    text: str
    to: str | None = None
    correlation_id: str | None = None
    created_at: float = 0.0  # wall-clock epoch seconds
    # kind "action": the channel action's record (daz.cytube.actions.to_record); ``text`` describes it.
    action: Mapping[str, Any] | None = None


class OutboundJournal(Protocol):
    async def save(self, line: OutboundLine) -> None: ...
    async def hand_off(self, line: OutboundLine) -> None:
        """Store a line for a room another instance holds; raises ``DazError`` if it was not stored."""
        ...

    async def ack(self, key: str) -> None: ...
    async def load(self, room: str) -> list[OutboundLine]: ...


class InMemoryJournal:
    """Keeps lines for the life of the process (durability comes with the RetryStore journal)."""

    def __init__(self) -> None:
        self._rooms: dict[str, OrderedDict[str, OutboundLine]] = {}
        self._room_of: dict[str, str] = {}

    async def save(self, line: OutboundLine) -> None:
        self._rooms.setdefault(line.room, OrderedDict())[line.key] = line
        self._room_of[line.key] = line.room

    async def hand_off(self, line: OutboundLine) -> None:
        await self.save(line)

    async def ack(self, key: str) -> None:
        room = self._room_of.pop(key, None)
        if room is not None:
            self._rooms.get(room, OrderedDict()).pop(key, None)

    async def load(self, room: str) -> list[OutboundLine]:
        return list(self._rooms.get(room, OrderedDict()).values())


@dataclass(slots=True)
class _Flight:
    """Send bookkeeping for the head line."""

    sent_at_ms: int | None = None  # wall ms of the last emit whose outcome is unknown ("in doubt")
    echo_timeouts: int = 0


RECENT_KEYS = 4096  # delivered/dropped keys remembered, so a pull racing an ack cannot resend a line


@dataclass(slots=True)
class Outbox:
    """The ordered, bounded queue of one room's unconfirmed lines; one line in flight at a time."""

    room: str
    journal: OutboundJournal
    capacity: int
    _lines: OrderedDict[str, OutboundLine] = field(default_factory=OrderedDict)
    _flight: _Flight = field(default_factory=_Flight)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    # Lines this process did not emit itself (restored after a restart, or readmitted by the retry
    # queue): a previous process may have sent them, so they are in doubt from their creation time
    # and the join backlog decides whether they go out again.
    _inherited: set[str] = field(default_factory=set)
    last_echo_ms: int | None = None  # server time of the newest echo that confirmed one of our lines
    # False while this instance does not hold the room (cluster): accepted lines stay in the journal
    # only, for whichever instance holds the room, instead of waiting here where nothing sends them.
    accepting: bool = True
    _delivered: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _dropped: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # True while the journal may hold lines for this room that are older than the next ``put`` and
    # not loaded here: from creation, after ``release``, and after every ``hand_off`` this process
    # made for the room. ``put`` then loads the journal first, so its line goes BEHIND them.
    _behind: bool = True

    async def restore(self) -> int:
        """Reload lines the journal still holds (e.g. after a process restart); returns how many."""
        self._behind = False  # before the read: a hand-off that completes during it marks it again
        for line in await self.journal.load(self.room):
            if line.key not in self._lines and line.key not in self._delivered:
                self._lines[line.key] = line
                self._inherited.add(line.key)
        if self._lines:
            self._changed.set()
        return len(self._lines)

    async def put(self, line: OutboundLine) -> None:
        if len(self._lines) >= self.capacity:
            raise OutboxFull(
                f"room {self.room}: outbox full ({self.capacity} lines)", operation_type="cytube_command"
            )
        await self.journal.save(line)
        if self.accepting and self._behind:
            # Older lines of this room may be in the journal and not here yet: lines this process
            # handed off before it took the room, or a previous holder's. Appending this line first
            # would send it ahead of them (per-sender order broken), and its echo would become the
            # ``last_echo_ms`` bound below which an inherited line's backlog check no longer looks,
            # so a line the previous holder had delivered would be sent twice. The load reads after
            # this line's save, so it returns them and this line in store order.
            await self.restore()
        if not self.accepting:  # the lease went while the line was being saved: it is the owner's now
            return
        if line.key in self._delivered:
            # The save's NOTIFY woke the hand-off puller, which pulled the line and had it delivered
            # before this call resumed: appending it now would send it a second time.
            return
        self._lines[line.key] = line  # already there (restored or pulled): its place is kept
        self._inherited.discard(line.key)  # a hand-off pull may have seen it first; it is ours, not in doubt
        self._changed.set()

    def contains(self, key: str) -> bool:
        return key in self._lines

    async def readmit(self, line: OutboundLine, *, handoff: bool = False) -> bool:
        """Put back a line the journal still owns (replay, or a previous process), without saving it
        again; it goes to the END: lines of the original order ahead of it were delivered already.

        ``handoff``: the line was pulled from the journal for this room's owner; a line this outbox
        gave up on (``drop_head``) is then left to the retry queue, which readmits it itself.
        Returns whether the line newly entered the outbox.
        """
        if (not self.accepting or line.key in self._lines or line.key in self._delivered
                or (handoff and line.key in self._dropped)):
            return False
        self._lines[line.key] = line
        self._inherited.add(line.key)
        self._changed.set()
        return True

    async def hand_off(self, line: OutboundLine) -> None:
        """Store a line for the instance that holds the room (cluster), not here. Should this
        instance take the room, its next ``put`` first loads the journal, so this line (and any
        other stored before it) is sent before that one."""
        await self.journal.hand_off(line)
        self._behind = True  # after the store returned: a restore that read before it missed it

    def delivered(self, key: str) -> bool:
        """Whether this outbox saw ``key`` delivered recently (its journal ack may still be on its way)."""
        return key in self._delivered

    def release(self) -> int:
        """The room's lease is gone: forget every line WITHOUT acknowledging it. The journal keeps
        them pending for the next holder, which restores them (in doubt) and sends the rest in order."""
        count = len(self._lines)
        self.accepting = False
        self._behind = True
        self._lines.clear()
        self._inherited.clear()
        self._flight = _Flight()
        self._dropped.clear()
        return count

    def open(self) -> None:
        """This instance holds the room again: accept lines (``restore`` reloads the journal's)."""
        self.accepting = True

    def drop_head(self) -> OutboundLine | None:
        """Give up on the head line WITHOUT acknowledging it to the journal: its durable copy stays
        pending and the retry queue takes it from there (and dead-letters it if it never goes out)."""
        line = self.head()
        if line is None:
            return None
        del self._lines[line.key]
        self._inherited.discard(line.key)
        self._flight = _Flight()
        _remember(self._dropped, line.key)
        return line

    def head(self) -> OutboundLine | None:
        return next(iter(self._lines.values()), None)

    @property
    def depth(self) -> int:
        return len(self._lines)

    @property
    def head_inherited(self) -> bool:
        """Whether the head line is in doubt only because another holder or process may have sent
        it (this outbox has not emitted it)."""
        head = self.head()
        return self._flight.sent_at_ms is None and head is not None and head.key in self._inherited

    @property
    def in_doubt_since_ms(self) -> int | None:
        if self._flight.sent_at_ms is None:
            head = self.head()
            if head is not None and head.key in self._inherited:
                return int(head.created_at * 1000)
        return self._flight.sent_at_ms

    def mark_sent(self, now_ms: int) -> None:
        self._flight.sent_at_ms = now_ms

    def mark_not_sent(self) -> None:
        """The head line certainly did not reach the server (e.g. ``cooldown``)."""
        self._flight.sent_at_ms = None
        head = self.head()
        if head is not None:
            self._inherited.discard(head.key)

    def note_echo_timeout(self) -> int:
        self._flight.echo_timeouts += 1
        return self._flight.echo_timeouts

    async def ack_head(self, echo_ms: int | None) -> OutboundLine | None:
        line = self.head()
        if line is None:
            return None
        del self._lines[line.key]
        self._inherited.discard(line.key)
        self._flight = _Flight()
        _remember(self._delivered, line.key)
        self._dropped.pop(line.key, None)
        if echo_ms is not None:
            self.last_echo_ms = max(echo_ms, self.last_echo_ms or echo_ms)
        await self.journal.ack(line.key)
        return line

    async def wait_nonempty(self) -> None:
        while not self._lines:
            self._changed.clear()
            await self._changed.wait()


def _remember(keys: OrderedDict[str, None], key: str) -> None:
    keys[key] = None
    keys.move_to_end(key)
    while len(keys) > RECENT_KEYS:
        keys.popitem(last=False)
