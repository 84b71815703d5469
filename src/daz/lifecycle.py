"""Long-running services: one TaskGroup owns them, stop is a cooperative drain, then cancellation.

Rules (also in docs/internal-contracts.md section 1):

* ``serve(services, stopping=, grace_seconds=)`` runs every service as a task named
  ``service.<name>`` in one ``asyncio.TaskGroup``. When ``stopping`` is set, services get
  ``grace_seconds`` to return on their own; the ones still running are then cancelled (logged as
  ``lifecycle.service_cancelled``) and ``serve`` returns normally.
* A service that returns while ``stopping`` is not set is logged (``lifecycle.service_returned``) and
  the others keep running: one-shot services are legal.
* A service that raises is fatal: ``serve`` logs ``lifecycle.service_failed``, sets ``stopping`` so
  the others drain cooperatively within the grace period, then re-raises the first error (later
  ones are logged). Wrap a service with ``supervised(...)`` to restart it instead.
* ``supervise`` restarts a crashed service after a backoff delay (``daz.backoff.proportional_backoff``), the
  attempt counter going back to 1 after a run that lasted ``stable_after`` seconds. It publishes
  nothing itself; callers pass ``on_crash``. ``CancelledError`` is never swallowed.
* Signals are the CLI's business: ``install_signal_handlers`` is called only from ``daz.cli``. The
  first SIGINT/SIGTERM sets ``stopping``; the second calls ``on_force`` (the CLI exits at once with
  128 + signal number: 130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from daz.aio import sleep_or_stop
from daz.backoff import proportional_backoff
from daz.clock import Clock, SystemClock

log = structlog.get_logger("daz.lifecycle")

DEFAULT_GRACE_SECONDS = 10.0
DEFAULT_RESTART_BASE_SECONDS = 1.0
DEFAULT_RESTART_CAP_SECONDS = 60.0
DEFAULT_STABLE_AFTER_SECONDS = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Service(Protocol):
    """Anything long-running: returns soon after ``stopping`` is set."""

    name: str

    async def run(self, stopping: asyncio.Event) -> None: ...


# serve -----------------------------------------------------------------------------------------

async def serve(
    services: Sequence[Service],
    *,
    stopping: asyncio.Event,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    clock: Clock | None = None,
) -> None:
    """Run ``services`` until they all return; see the module docstring for stop and failure rules."""
    names = [s.name for s in services]
    if len(set(names)) != len(names):
        raise ValueError(f"service names must be unique, got {names}")
    if not services:
        return
    the_clock: Clock = clock if clock is not None else SystemClock()
    failures: list[BaseException] = []
    running: dict[str, asyncio.Task[None]] = {}

    async with asyncio.TaskGroup() as group:
        grace_task = group.create_task(
            _enforce_grace(running, stopping, grace_seconds, the_clock), name="lifecycle.grace"
        )

        def finished(_: asyncio.Task[None]) -> None:
            if all(task.done() for task in running.values()):
                grace_task.cancel()

        for service in services:
            task = group.create_task(
                _run_service(service, stopping, failures), name=f"service.{service.name}"
            )
            running[service.name] = task
            task.add_done_callback(finished)
        log.info("lifecycle.serving", services=names, grace_seconds=grace_seconds)

    if failures:
        for extra in failures[1:]:
            log.error("lifecycle.additional_failure", error=repr(extra))
        raise failures[0]
    log.info("lifecycle.stopped", services=names)


async def _run_service(service: Service, stopping: asyncio.Event, failures: list[BaseException]) -> None:
    try:
        await service.run(stopping)
    except asyncio.CancelledError:
        log.warning("lifecycle.service_cancelled", service=service.name)
        raise
    except Exception as exc:
        # Fatal: stop the others cooperatively, then serve() re-raises this.
        log.exception("lifecycle.service_failed", service=service.name, error=repr(exc))
        failures.append(exc)
        stopping.set()
        return
    if stopping.is_set():
        log.info("lifecycle.service_stopped", service=service.name)
    else:
        log.warning("lifecycle.service_returned", service=service.name)


async def _enforce_grace(
    running: dict[str, asyncio.Task[None]], stopping: asyncio.Event, grace_seconds: float, clock: Clock
) -> None:
    await stopping.wait()
    log.info("lifecycle.draining", grace_seconds=grace_seconds,
             services=[n for n, t in running.items() if not t.done()])
    await clock.sleep(grace_seconds)
    late = [name for name, task in running.items() if not task.done()]
    if late:
        log.warning("lifecycle.grace_expired", services=late, grace_seconds=grace_seconds)
    for name in late:
        running[name].cancel()


# supervise -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CrashReport:
    """What ``on_crash`` receives after a supervised service raised."""

    service: str
    error: Exception
    attempt: int
    delay_seconds: float
    ran_seconds: float


CrashCallback = Callable[[CrashReport], Awaitable[None] | None]


def next_attempt(previous_attempt: int, ran_seconds: float, stable_after: float) -> int:
    """The restart attempt number after a crash: back to 1 when the last run was stable."""
    if ran_seconds >= stable_after:
        return 1
    return previous_attempt + 1


def restart_delay(attempt: int, rng: random.Random, *, base: float, cap: float) -> float:
    """Seconds to wait before restart ``attempt``: the reconnect backoff scaled to ``base`` and ``cap``."""
    return proportional_backoff(attempt, rng, base=base, cap=cap)


async def supervise(
    service: Service,
    *,
    stopping: asyncio.Event,
    clock: Clock,
    rng: random.Random,
    base: float = DEFAULT_RESTART_BASE_SECONDS,
    cap: float = DEFAULT_RESTART_CAP_SECONDS,
    on_crash: CrashCallback | None = None,
    stable_after: float = DEFAULT_STABLE_AFTER_SECONDS,
) -> None:
    """Run ``service``, restarting it with backoff whenever it raises, until ``stopping`` is set.

    A clean return ends supervision (the service decided it is done). Restarts wait on ``clock``
    and end early when ``stopping`` is set.
    """
    attempt = 0
    while not stopping.is_set():
        started = clock.monotonic()
        try:
            await service.run(stopping)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ran = clock.monotonic() - started
            attempt = next_attempt(attempt, ran, stable_after)
            delay = restart_delay(attempt, rng, base=base, cap=cap)
            log.warning("lifecycle.service_crashed", service=service.name, attempt=attempt,
                        restart_in=round(delay, 3), ran_seconds=round(ran, 3), error=repr(exc),
                        exc_info=exc)
            await _report(on_crash, CrashReport(service.name, exc, attempt, delay, ran))
            if await sleep_or_stop(clock, delay, stopping, label=f"service.{service.name}.restart"):
                break
            log.info("lifecycle.service_restarting", service=service.name, attempt=attempt)
            continue
        return


async def _report(on_crash: CrashCallback | None, report: CrashReport) -> None:
    if on_crash is None:
        return
    try:
        result = on_crash(report)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a broken reporter must not stop the restarts
        log.exception("lifecycle.on_crash_failed", service=report.service, error=repr(exc))


class Supervised:
    """A ``Service`` that runs another under ``supervise`` (so ``serve`` restarts instead of failing)."""

    def __init__(
        self,
        service: Service,
        *,
        clock: Clock,
        rng: random.Random,
        base: float = DEFAULT_RESTART_BASE_SECONDS,
        cap: float = DEFAULT_RESTART_CAP_SECONDS,
        on_crash: CrashCallback | None = None,
        stable_after: float = DEFAULT_STABLE_AFTER_SECONDS,
    ) -> None:
        self.name = service.name
        self.service = service
        self._clock = clock
        self._rng = rng
        self._base = base
        self._cap = cap
        self._on_crash = on_crash
        self._stable_after = stable_after

    async def run(self, stopping: asyncio.Event) -> None:
        await supervise(self.service, stopping=stopping, clock=self._clock, rng=self._rng,
                        base=self._base, cap=self._cap, on_crash=self._on_crash,
                        stable_after=self._stable_after)


# signals (CLI only) ----------------------------------------------------------------------------

def install_signal_handlers(
    loop: asyncio.AbstractEventLoop,
    stopping: asyncio.Event,
    *,
    on_force: Callable[[int], None],
) -> Callable[[], None]:
    """First SIGINT/SIGTERM sets ``stopping``; the second calls ``on_force(signum)``.

    Only ``daz.cli`` calls this. Returns a function that removes the handlers again.
    """
    received: list[int] = []

    def handle(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            log.info("lifecycle.signal", signal=signal.Signals(signum).name, action="drain")
            stopping.set()
        else:
            log.warning("lifecycle.signal", signal=signal.Signals(signum).name, action="force_exit")
            on_force(signum)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handle, int(sig))

    def remove() -> None:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    return remove


def force_exit(signum: int) -> None:
    """Exit now with 128 + ``signum`` (130 SIGINT, 143 SIGTERM), skipping cleanup on purpose."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


__all__ = [
    "CrashReport",
    "Service",
    "Supervised",
    "force_exit",
    "install_signal_handlers",
    "next_attempt",
    "restart_delay",
    "serve",
    "supervise",
]
