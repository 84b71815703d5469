"""``HandoffPuller``: the owner's side of the cross-instance hand-off (scale-out).

A line (or any journalled room item) sent on an instance that does not hold the room is stored as a
pending journal item and nothing else (``RoomManager._enqueue``); the insert NOTIFYs. Every
instance's puller wakes on that NOTIFY (through the retry queue's LISTEN connection, no second one)
and reads the pending items of the rooms it holds; the owner finds the new line and appends it to
the room's outbox, which sends it in order with its own traffic. The echo acknowledges the item.

Order: the pull reads in store (id) order and appends behind what the outbox already holds, so the
lines of one sender reach the room in the order that sender's ``send_chat`` calls returned; lines
of different senders go out in the order the owner saw them committed. After a take-over the new
owner restores every pending line of the room in id order.

A poll every ``poll_seconds`` covers a NOTIFY lost while the LISTEN connection was reconnecting.
Each pull costs one query per instance; wake-ups that arrive during a pull coalesce into one, and
pulls are at least 50 ms apart (a busy cluster NOTIFYs on every schedule). Known cost: the pull reads
every pending ``cytube_command`` item and keeps the held rooms' ones, so a very large backlog makes
each pull heavier (a query by target would not).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Protocol

import structlog

from daz.aio import sleep_or_stop, wait_any
from daz.clock import Clock, SystemClock
from daz.cytube.outbox import OutboundLine
from daz.errors import StoreError

log = structlog.get_logger("daz.cytube")

HANDOFF_POLL_SECONDS = 2.0
PULL_MIN_INTERVAL_SECONDS = 0.05


class PendingLines(Protocol):
    async def pending(self, rooms: Collection[str]) -> list[OutboundLine]: ...


class HandoffRooms(Protocol):
    def held_rooms(self) -> list[str]: ...
    async def take_handoff(self, line: OutboundLine) -> bool: ...


class HandoffPuller:
    """A ``Service``: pulls lines other instances stored for the rooms this instance holds."""

    name = "handoff"

    def __init__(self, journal: PendingLines, rooms: HandoffRooms, *,
                 poll_seconds: float = HANDOFF_POLL_SECONDS, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.journal = journal
        self.rooms = rooms
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self._wake.clear()  # before the pull: a NOTIFY during it triggers one more pull
            await self.pull()
            # At most one pull per PULL_MIN_INTERVAL_SECONDS per instance: every schedule anywhere in
            # the cluster NOTIFYs, and each pull reads the held rooms' pending lines.
            await sleep_or_stop(self.clock, PULL_MIN_INTERVAL_SECONDS, stopping, label="handoff.pace")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await wait_any(self._wake, stopping, label="handoff.idle")

    async def pull(self) -> int:
        """One pass; returns how many lines newly entered an outbox."""
        held = self.rooms.held_rooms()
        if not held:
            return 0
        try:
            lines = await self.journal.pending(held)
        except StoreError as exc:
            log.warning("handoff.pull_failed", error=str(exc))
            return 0
        taken = 0
        for line in lines:
            if await self.rooms.take_handoff(line):
                taken += 1
        return taken
