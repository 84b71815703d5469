"""``daz run``: the bot in its configured rooms, or one room from the command line (quick start).

Signal handling lives here: the first SIGINT/SIGTERM starts the graceful stop (in-flight work
drains within ``--grace`` seconds, the rest stays persisted in the retry queue); a second one exits
at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from daz.config import DazConfig, RoomConfig, format_problem, load_config
from daz.errors import ConfigError, DazError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG_ERROR = 2
EXIT_SHUTDOWN_FORCED = 4
# After the drain grace, cancelling and closing (pools, spool, sockets) gets this much more time. A
# database behind a network partition can hold a close forever (asyncpg sends a cancel request on a
# new connection that never completes), and an operator's stop must not hang: past the budget the
# process exits with EXIT_SHUTDOWN_FORCED. Unfinished queue claims are reclaimed after their lease.
SHUTDOWN_CLOSE_BUDGET_SECONDS = 5.0


def run_command(  # noqa: PLR0917 - typer maps each CLI option to a parameter
    config: Path | None = typer.Option(  # noqa: B008
        None, "--config", "-c", help="JSON configuration file (see `daz config example`)."
    ),
    channel: str | None = typer.Option(None, "--channel", help="Quick start: join this channel."),
    user: str | None = typer.Option(None, "--user", help="Bot account name (omit for a guest)."),
    password_file: Path | None = typer.Option(  # noqa: B008
        None, "--password-file", help="File holding the bot account's password."
    ),
    server_url: str | None = typer.Option(
        None, "--server-url", help="Socket.IO server URL (skips the socketconfig lookup)."
    ),
    base_url: str | None = typer.Option(None, "--base-url", help="CyTube site (default https://cytu.be)."),
    log_format: str = typer.Option("auto", "--log-format", help="auto, console or json."),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning or error."),
    grace: float = typer.Option(10.0, "--grace", min=0.0, help="Seconds to drain work on shutdown."),
) -> None:
    """Run the bot in the configured CyTube rooms until SIGINT/SIGTERM."""
    try:
        cfg = build_config(config, channel=channel, user=user, password_file=password_file,
                           server_url=server_url, base_url=base_url)
        fmt = _choice("--log-format", log_format, ("auto", "console", "json"))
        level = _choice("--log-level", log_level or cfg.logging.level, ("debug", "info", "warning", "error"))
        for room in cfg.rooms:
            room.resolved_password()  # an unreadable password file fails now, not at login
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    from daz.logging import configure_logging

    configure_logging(level, fmt, secrets=cfg.secrets())  # type: ignore[arg-type]
    code = asyncio.run(run_bot(cfg, grace_seconds=grace))
    raise typer.Exit(code)


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{option}: must be one of {', '.join(allowed)} (got {value!r})")
    return value


def build_config(
    path: Path | None,
    *,
    channel: str | None = None,
    user: str | None = None,
    password_file: Path | None = None,
    server_url: str | None = None,
    base_url: str | None = None,
) -> DazConfig:
    """The configuration file (or defaults) plus the quick-start options. Raises ``ConfigError``."""
    cfg = load_config(path)
    update: dict[str, Any] = {}
    if channel is not None:
        if any(r.channel == channel for r in cfg.rooms):
            raise ConfigError(f"--channel: room '{channel}' is already in the configuration")
        try:
            room = RoomConfig(channel=channel, username=user, password_file=password_file,
                              server_url=server_url)
        except ValidationError as exc:
            problems = [format_problem({**e, "loc": ("--channel", *e["loc"])}) for e in exc.errors()]
            raise ConfigError("--channel: invalid room options", problems) from exc
        update["rooms"] = [*cfg.rooms, room]
    elif user is not None or password_file is not None or server_url is not None:
        raise ConfigError("--user, --password-file and --server-url need --channel")
    if base_url is not None:
        update["cytube"] = cfg.cytube.model_copy(update={"base_url": base_url})
    cfg = cfg.model_copy(update=update) if update else cfg
    if not cfg.rooms:
        raise ConfigError("no rooms to join: pass --channel NAME, or add \"rooms\" to the configuration "
                          "(daz config example shows the shape)")
    return cfg


async def run_bot(cfg: DazConfig, *, grace_seconds: float) -> int:
    """Build the app, announce where to look, run until a signal; the process exit code."""
    from daz.app import AppOptions, DazApp
    from daz.lifecycle import force_exit, install_signal_handlers

    stopping = asyncio.Event()
    remove = install_signal_handlers(asyncio.get_running_loop(), stopping, on_force=force_exit)
    deadline: list[asyncio.TimerHandle] = []
    try:
        async with DazApp(cfg, AppOptions(stop_grace_seconds=grace_seconds)) as app:
            typer.echo(f"daz: database {cfg.database.display_url()} "
                       f"(migrations applied now: {app.migrated or 'none'})")
            if cfg.cluster.enabled:
                typer.echo(f"daz: cluster {app.cluster_mode}")
            async with asyncio.TaskGroup() as tg:
                tg.create_task(app.run(stopping), name="daz.app")
                tg.create_task(_announce(app, cfg), name="daz.announce")
                tg.create_task(_arm_deadline(stopping, grace_seconds, deadline), name="daz.deadline")
        typer.echo("daz: stopped cleanly")
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        return EXIT_CONFIG_ERROR
    except DazError as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    finally:
        remove()
        for timer in deadline:
            timer.cancel()
    return EXIT_OK


async def _arm_deadline(
    stopping: asyncio.Event, grace_seconds: float, into: list[asyncio.TimerHandle]
) -> None:
    """Once a stop is requested, a plain timer (it outlives every task) bounds the whole shutdown."""
    await stopping.wait()
    into.append(asyncio.get_running_loop().call_later(
        grace_seconds + SHUTDOWN_CLOSE_BUDGET_SECONDS, _force_close_exit))


def _force_close_exit() -> None:
    import os
    import sys

    import structlog

    structlog.get_logger("daz.cli").error(
        "lifecycle.shutdown_forced", budget_seconds=SHUTDOWN_CLOSE_BUDGET_SECONDS,
        pending=sorted(t.get_name() for t in asyncio.all_tasks() if not t.done())[:20],
    )
    typer.echo(f"daz: closing did not finish within {SHUTDOWN_CLOSE_BUDGET_SECONDS:.0f}s; exiting "
               f"({EXIT_SHUTDOWN_FORCED}); unfinished queue claims return after their lease", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_SHUTDOWN_FORCED)


async def _announce(app: Any, cfg: DazConfig) -> None:
    rooms = ", ".join(r.channel for r in cfg.rooms)
    typer.echo(f"daz: joining {rooms}")
    server = app.health_server
    if server is None:
        typer.echo("daz: health server disabled (health.enabled = false)")
        return
    try:
        async with asyncio.timeout(10):
            await server.started.wait()
    except TimeoutError:
        typer.echo("daz: health server did not start within 10 s", err=True)
        return
    typer.echo(f"daz: status page {server.url}/  metrics {server.url}/metrics  health {server.url}/health")
