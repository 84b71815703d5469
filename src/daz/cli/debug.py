"""Hidden ``daz debug`` group: tools for testing daz's own machinery (not for users).

``daz debug idle`` runs a long-lived dummy service under the CLI's signal handling, so tests can
send real signals to a real process: first SIGINT/SIGTERM drains (exit 0), a second forces exit
(128 + signal number).
"""

from __future__ import annotations

import asyncio
import os
import random

import structlog
import typer

from daz.aio import sleep_or_stop
from daz.clock import Clock, SystemClock
from daz.lifecycle import (
    Service,
    Supervised,
    force_exit,
    install_signal_handlers,
    serve,
)
from daz.logging import LogFormat, configure_logging

app = typer.Typer(no_args_is_help=True)
log = structlog.get_logger("daz.cli.debug")

TICK_SECONDS = 1.0


class IdleService:
    """Does nothing, slowly; on stop it 'drains' for ``drain_seconds`` and says so."""

    def __init__(self, clock: Clock, drain_seconds: float, name: str = "idle") -> None:
        self.name = name
        self._clock = clock
        self._drain_seconds = drain_seconds

    async def run(self, stopping: asyncio.Event) -> None:
        ticks = 0
        log.info("debug.idle.started", service=self.name)
        while not await sleep_or_stop(self._clock, TICK_SECONDS, stopping):
            ticks += 1
        log.info("debug.idle.draining", service=self.name, ticks=ticks)
        await self._clock.sleep(self._drain_seconds)
        log.info("debug.idle.drained", service=self.name)


class CrashingService:
    """Raises every ``crash_every`` seconds (run it under ``Supervised``)."""

    def __init__(self, clock: Clock, crash_every: float, name: str = "crasher") -> None:
        self.name = name
        self._clock = clock
        self._crash_every = crash_every

    async def run(self, stopping: asyncio.Event) -> None:
        if await sleep_or_stop(self._clock, self._crash_every, stopping):
            return
        raise RuntimeError("debug.idle simulated crash")


class StubbornService:
    """Ignores ``stopping``: only the grace-period cancellation (or a second signal) ends it."""

    def __init__(self, clock: Clock, name: str = "stubborn") -> None:
        self.name = name
        self._clock = clock

    async def run(self, stopping: asyncio.Event) -> None:
        del stopping  # deliberately ignored: this service exists to test the grace period
        await self._clock.sleep(365 * 24 * 3600)


async def _idle(grace: float, crash_every: float | None, drain_seconds: float, stubborn: bool) -> None:
    clock = SystemClock()
    stopping = asyncio.Event()
    services: list[Service] = [IdleService(clock, drain_seconds)]
    if crash_every is not None:
        services.append(
            Supervised(CrashingService(clock, crash_every), clock=clock, rng=random.Random(),
                       base=min(1.0, crash_every), cap=5.0, stable_after=3 * crash_every)
        )
    if stubborn:
        services.append(StubbornService(clock))
    remove = install_signal_handlers(asyncio.get_running_loop(), stopping, on_force=force_exit)
    try:
        log.info("debug.idle.ready", pid=os.getpid(), grace_seconds=grace,
                 services=[s.name for s in services])
        await serve(services, stopping=stopping, grace_seconds=grace, clock=clock)
    finally:
        remove()
    log.info("debug.idle.exit", code=0)


@app.command("idle")
def idle(
    *,
    grace: float = typer.Option(5.0, "--grace", min=0.0, help="Seconds services get to drain."),
    crash_every: float | None = typer.Option(
        None, "--crash-every", min=0.01, help="Also run a service that crashes every S seconds."
    ),
    drain_seconds: float = typer.Option(0.2, "--drain-seconds", min=0.0, help="Simulated drain time."),
    stubborn: bool = typer.Option(False, "--stubborn", help="Also run a service that ignores stop."),
    log_format: str = typer.Option("auto", "--log-format", help="auto, console or json."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run a dummy long-lived service until SIGINT/SIGTERM (used by the signal tests)."""
    if log_format not in ("auto", "console", "json"):
        raise typer.BadParameter("must be auto, console or json", param_hint="--log-format")
    fmt: LogFormat = "json" if log_format == "json" else "console" if log_format == "console" else "auto"
    configure_logging(log_level, fmt)
    asyncio.run(_idle(grace, crash_every, drain_seconds, stubborn))
