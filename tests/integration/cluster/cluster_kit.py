"""Shared by the cluster integration tests: who is in which room, and a bounded wait."""

from __future__ import annotations

import asyncio
import time


class Joined:
    """Who is in which room, as the rooms layer would see it; records any double occupancy."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.doubles: list[tuple[str, str, str]] = []
        self.left_at: dict[str, float] = {}  # instance -> monotonic time it last left a room

    def acquirer(self, me: str):  # type: ignore[no-untyped-def]
        async def on_acquire(room: str, fence: int) -> None:
            if room in self.owner and self.owner[room] != me:
                self.doubles.append((room, self.owner[room], me))
            self.owner[room] = me

        return on_acquire

    def loser(self, me: str):  # type: ignore[no-untyped-def]
        async def on_lose(room: str, reason: str) -> None:
            if self.owner.get(room) == me:
                del self.owner[room]
            self.left_at[me] = time.monotonic()

        return on_lose


async def wait_for(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)
    return loop.time() - start
