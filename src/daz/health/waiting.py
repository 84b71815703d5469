"""Sleeping on the injected clock while staying responsive to a stop request."""

from __future__ import annotations

import asyncio

from daz.clock import Clock


async def sleep_or_stop(clock: Clock, seconds: float, stopping: asyncio.Event) -> bool:
    """Sleep ``seconds`` on ``clock`` unless ``stopping`` is set first; True when stopping."""
    if stopping.is_set():
        return True
    async with asyncio.TaskGroup() as tg:
        sleeper = tg.create_task(clock.sleep(seconds), name="health.wait.sleep")
        waiter = tg.create_task(stopping.wait(), name="health.wait.stop")
        done, _ = await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeper, waiter):
            if task not in done:
                task.cancel()
    return stopping.is_set()
