"""Waiting and racing: the one way daz waits for "whichever happens first".

Every helper here is built on ``race``: the contenders run as named tasks in one ``TaskGroup``, the
first to finish cancels the others, and the group waits for them to be gone before the call returns.
That is the single cancellation technique in daz (no ``asyncio.wait(FIRST_COMPLETED)`` followed by
hand-written cancels, no done-callbacks cancelling siblings), and it gives three guarantees:

- nothing outlives the wait: a losing contender has finished being cancelled when the call returns;
- cancelling the caller cancels every contender (``CancelledError`` is never swallowed);
- an exception from the winner reaches the caller as itself, not wrapped in an ``ExceptionGroup``.

Timeouts that are behaviour (a backoff, a reply deadline, a health check's time limit) sleep on the
injected ``Clock``, so tests drive them with ``daz.testing.FakeClock``. A bound that only keeps I/O
from hanging for ever (closing a socket, a driver call) uses ``asyncio.timeout`` on the loop's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from daz.clock import Clock

T = TypeVar("T")


async def race(
    contenders: Mapping[str, Callable[[], Awaitable[Any]]], *, label: str = "race"
) -> tuple[str, Any]:
    """Run every contender; return ``(name, result)`` of the first to finish and cancel the rest.

    Tasks are named ``<label>.<name>``. An exception from the first finisher is re-raised as itself;
    exceptions from contenders that finish after it are discarded (they lost).
    """
    if not contenders:
        raise ValueError(f"{label}: race() needs at least one contender")
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
    """``await factory()``, but raise ``TimeoutError`` after ``timeout`` seconds on ``clock``.

    To keep a future alive past the timeout (a reply that may still come), pass
    ``lambda: asyncio.shield(fut)``.
    """
    winner, result = await race({"done": factory, "timeout": lambda: clock.sleep(timeout)}, label=label)
    if winner == "timeout":
        raise TimeoutError(f"{label}: no result within {timeout:g}s")
    return result  # type: ignore[no-any-return]


async def sleep_or_stop(
    clock: Clock, seconds: float, stopping: asyncio.Event, *, label: str = "sleep"
) -> bool:
    """Sleep ``seconds`` on ``clock`` unless ``stopping`` is set first; True when stopping.

    The loop of every periodic service: ``while not await sleep_or_stop(clock, period, stopping): ...``.
    """
    if stopping.is_set():
        return True
    if seconds <= 0:
        await asyncio.sleep(0)  # still a scheduling point, so a zero-period loop cannot starve others
        return stopping.is_set()
    await race({"stop": stopping.wait, "sleep": lambda: clock.sleep(seconds)}, label=label)
    return stopping.is_set()


async def wait_any(*events: asyncio.Event, label: str = "wait_any") -> None:
    """Return as soon as one of ``events`` is set."""
    if not events:
        raise ValueError(f"{label}: wait_any() needs at least one event")
    if any(event.is_set() for event in events):
        return
    await race({str(i): event.wait for i, event in enumerate(events)}, label=label)


__all__ = ["race", "sleep_or_stop", "wait_any", "wait_for"]
