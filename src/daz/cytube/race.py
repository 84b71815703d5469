"""Structured "first of" waiting: run named contenders in a TaskGroup, keep the first to finish.

Used for every wait the supervisor does (backoff vs stop vs probe, a reply vs its timeout), so
cancellation reaches each contender and nothing outlives the wait. Timeouts sleep on the injected
``Clock`` so tests drive them with ``FakeClock``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from daz.clock import Clock

T = TypeVar("T")


async def race(
    contenders: dict[str, Callable[[], Awaitable[Any]]], *, label: str = "race"
) -> tuple[str, Any]:
    """Run every contender; return ``(name, result)`` of the first to finish, cancel the rest.

    An exception from the first finisher is re-raised as itself (not as an ``ExceptionGroup``).
    """
    outcome: list[tuple[str, Any, BaseException | None]] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    async def run(name: str, factory: Callable[[], Awaitable[Any]]) -> None:
        try:
            result = await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the caller below, unwrapped
            record: tuple[str, Any, BaseException | None] = (name, None, exc)
        else:
            record = (name, result, None)
        if not outcome:
            outcome.append(record)
            for other_name, task in tasks.items():
                if other_name != name:
                    task.cancel()

    async with asyncio.TaskGroup() as group:
        for name, factory in contenders.items():
            tasks[name] = group.create_task(run(name, factory), name=f"{label}.{name}")
    name, result, error = outcome[0]
    if error is not None:
        raise error
    return name, result


async def wait_for(clock: Clock, timeout: float, factory: Callable[[], Awaitable[T]], *, label: str) -> T:
    """``await factory()`` but raise ``TimeoutError`` after ``timeout`` seconds on ``clock``."""
    winner, result = await race({"done": factory, "timeout": lambda: clock.sleep(timeout)}, label=label)
    if winner == "timeout":
        raise TimeoutError(f"{label}: no result within {timeout}s")
    return result  # type: ignore[no-any-return]
