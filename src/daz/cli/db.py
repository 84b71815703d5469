"""``daz db migrate`` and ``daz db status``, plus the database-URL resolution the CLI shares.

The URL comes from ``--database-url``, else the config file (``-c``; ``DAZ_*`` overrides apply),
else ``DAZ_DATABASE_URL``, else the embedded default ``sqlite:///daz.db`` in the working directory.

Exit codes (all database commands): 0 ok, 1 database unreachable or failed, 2 bad arguments or
configuration, 3 unknown id / nothing matched, 4 declined at the confirmation prompt.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

from daz.config import DATABASE_URL_ENV, DEFAULT_SQLITE_URL, load_config, mask_dsn
from daz.errors import ConfigError, ItemNotFound, StoreError

app = typer.Typer(no_args_is_help=True)
T = TypeVar("T")

EXIT_DB_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DECLINED = 4

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="JSON configuration file (database.url is used).")
URL_OPTION = typer.Option(
    None, "--database-url", help=f"sqlite:///path or postgresql://… (overrides -c and ${DATABASE_URL_ENV})."
)


def fail(message: str, code: int) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def resolve_url(config: Path | None, database_url: str | None) -> str:
    if database_url:
        return database_url
    if config is not None:
        try:
            return load_config(config).database.url.get_secret_value()
        except ConfigError as exc:
            raise fail("; ".join(exc.problems), EXIT_USAGE) from None
    return os.environ.get(DATABASE_URL_ENV) or DEFAULT_SQLITE_URL


def run_db(url: str, action: Callable[[], Awaitable[T]]) -> T:
    """Run ``action`` and turn store errors into one clear line and an exit code."""
    try:
        return asyncio.run(_call(action))
    except ItemNotFound as exc:
        raise fail(str(exc), EXIT_NOT_FOUND) from None
    except StoreError as exc:
        raise fail(f"{exc} (database: {mask_dsn(url)})", EXIT_DB_ERROR) from None
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


async def _call(action: Callable[[], Awaitable[T]]) -> T:
    return await action()


@app.command("migrate")
def migrate_command(
    config: Path | None = CONFIG_OPTION,
    database_url: str | None = URL_OPTION,
) -> None:
    """Apply every pending schema migration (also done automatically on start)."""
    from daz.store.migrate import migrate

    url = resolve_url(config, database_url)
    applied = run_db(url, lambda: migrate(url))
    if applied:
        typer.echo(f"applied migrations {', '.join(f'{v:04d}' for v in applied)} to {mask_dsn(url)}")
    else:
        typer.echo(f"schema is up to date ({mask_dsn(url)})")


@app.command("status")
def status_command(
    config: Path | None = CONFIG_OPTION,
    database_url: str | None = URL_OPTION,
) -> None:
    """Show which migrations are applied; exit 3 when some are pending."""
    from daz.store.migrate import status

    url = resolve_url(config, database_url)
    states = run_db(url, lambda: status(url))
    table = Table(title=f"schema migrations ({mask_dsn(url)})")
    table.add_column("version", justify="right")
    table.add_column("name")
    table.add_column("applied at")
    pending = 0
    for s in states:
        if s.applied_at is None:
            pending += 1
        applied = str(s.applied_at) if s.applied_at is not None else "pending"
        table.add_row(f"{s.version:04d}", s.name, applied)
    Console().print(table)
    if pending:
        raise fail(f"{pending} migration(s) pending; run `daz db migrate`", EXIT_NOT_FOUND)
