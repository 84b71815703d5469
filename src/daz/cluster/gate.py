"""``LeaseGate``: lets a room's supervisor run only while this instance holds the room's lease.

The coordinator calls ``on_acquire``/``on_lose``; the room manager asks ``wait_acquired`` before it
connects a room and gets a per-room stop signal that fires when the lease is lost. ``on_lose``
waits (bounded) until the room reports that it disconnected, so the coordinator's watchdog really
has left the room before the lease can expire.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from daz.aio import wait_any

log = structlog.get_logger("daz.cluster")

LEAVE_WAIT_SECONDS = 2.0


class _RoomSlot:
    def __init__(self) -> None:
        self.held = asyncio.Event()
        self.lost = asyncio.Event()
        self.left = asyncio.Event()
        self.left.set()
        self.fence: int | None = None


class LeaseGate:
    def __init__(self) -> None:
        self._slots: dict[str, _RoomSlot] = {}

    def _slot(self, room: str) -> _RoomSlot:
        slot = self._slots.get(room)
        if slot is None:
            slot = self._slots[room] = _RoomSlot()
        return slot

    def fence(self, room: str) -> int | None:
        """The fence of the lease this instance holds for ``room`` (None when it holds none)."""
        slot = self._slots.get(room)
        return slot.fence if slot is not None and slot.held.is_set() else None

    def holds(self, room: str) -> bool:
        return self.fence(room) is not None

    def owned(self) -> list[str]:
        return [room for room, slot in self._slots.items() if slot.held.is_set()]

    # coordinator side ------------------------------------------------------------------------
    async def on_acquire(self, room: str, fence: int) -> None:
        slot = self._slot(room)
        slot.fence = fence
        slot.lost.clear()
        slot.held.set()

    async def on_lose(self, room: str, reason: str) -> None:
        slot = self._slot(room)
        slot.held.clear()
        slot.fence = None
        slot.lost.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LEAVE_WAIT_SECONDS):
                await slot.left.wait()
        if not slot.left.is_set():
            log.error("cluster.leave_slow", room=room, reason=reason)

    # room side -------------------------------------------------------------------------------
    async def wait_acquired(self, room: str, stopping: asyncio.Event) -> bool:
        """Wait until the lease is held (True) or ``stopping`` is set (False)."""
        slot = self._slot(room)
        if slot.held.is_set():
            return True
        await wait_any(slot.held, stopping)
        return slot.held.is_set() and not stopping.is_set()

    def lost_signal(self, room: str) -> asyncio.Event:
        return self._slot(room).lost

    def joined(self, room: str) -> None:
        self._slot(room).left.clear()

    def left(self, room: str) -> None:
        self._slot(room).left.set()
