"""``daz retry stats|list|show|replay|purge``: inspect and operate the retry queue, either store.

Exit codes as for ``daz db``: 0 ok, 1 database error, 2 bad arguments, 3 unknown id / nothing
matched, 4 declined at the confirmation prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

from daz.cli.db import (
    CONFIG_OPTION,
    EXIT_DECLINED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    URL_OPTION,
    fail,
    resolve_url,
    run_db,
)
from daz.store.base import REQUEUEABLE_STATUSES, STATUSES, QueueItem, RetryStore

app = typer.Typer(no_args_is_help=True)
T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
ERROR_COLUMN_CHARS = 60


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` → timedelta; anything else is a usage error."""
    match = _DURATION.match(text)
    if not match:
        raise fail(f"bad duration '{text}': use a number and one of s, m, h, d, w (e.g. 7d, 12h)", EXIT_USAGE)
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise fail(f"unknown status '{status}'; expected one of {', '.join(STATUSES)}", EXIT_USAGE)


def with_store(url: str, action: Callable[[RetryStore], Awaitable[T]]) -> T:
    from daz.store import open_store

    async def run() -> T:
        store = await open_store(url, pool_min_size=1, pool_max_size=2)
        try:
            return await action(store)
        finally:
            await store.close()

    return run_db(url, run)


def _age(moment: datetime | None) -> str:
    if moment is None:
        return ""
    seconds = (datetime.now(UTC) - moment).total_seconds()
    return _seconds(seconds) + (" ago" if seconds >= 0 else " from now")


def _seconds(value: float) -> str:
    value = abs(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.1f}s"


def _short(text: str | None) -> str:
    if not text:
        return ""
    return text if len(text) <= ERROR_COLUMN_CHARS else text[: ERROR_COLUMN_CHARS - 1] + "…"


@app.command("stats")
def stats_command(config: Path | None = CONFIG_OPTION, database_url: str | None = URL_OPTION) -> None:
    """Counts per operation type and status (the daz_retry_queue_stats view)."""
    url = resolve_url(config, database_url)
    rows = with_store(url, lambda s: s.stats())
    table = Table(title="retry queue")
    for name, justify in (("operation type", "left"), ("status", "left"), ("count", "right"),
                          ("avg attempts", "right"), ("max attempts", "right"), ("oldest pending", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        age = r.oldest_pending_age_seconds
        table.add_row(r.operation_type, r.status, str(r.count), f"{r.avg_attempts:.2f}", str(r.max_attempts),
                      _seconds(age) if age is not None else "")
    Console().print(table if rows else "the retry queue is empty")


@app.command("list")
def list_command(
    status: str | None = typer.Option(None, "--status", help=f"One of: {', '.join(STATUSES)}."),
    operation_type: str | None = typer.Option(None, "--type", help="Only this operation type."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many rows."),
    config: Path | None = CONFIG_OPTION,
    database_url: str | None = URL_OPTION,
) -> None:
    """List queue items, oldest first."""
    check_status(status)
    url = resolve_url(config, database_url)
    items = with_store(url, lambda s: s.list(status=status, operation_type=operation_type, limit=limit))
    if not items:
        Console().print("no matching items")
        return
    table = Table()
    for name in ("id", "type", "status", "attempt", "target", "due", "last error"):
        table.add_column(name)
    for i in items:
        table.add_row(str(i.id), i.operation_type, i.status, f"{i.attempt}/{i.max_retries}", i.target or "",
                      _age(i.retry_after) if i.status == "pending" else "", _short(i.last_error))
    Console().print(table)


@app.command("show")
def show_command(
    item_id: int = typer.Argument(..., metavar="ID", help="The item's id (see `daz retry list`)."),
    config: Path | None = CONFIG_OPTION,
    database_url: str | None = URL_OPTION,
) -> None:
    """Everything about one item, payload included."""
    url = resolve_url(config, database_url)
    item: QueueItem = with_store(url, lambda s: s.get(item_id))
    table = Table(show_header=False, title=f"retry item {item.id}")
    table.add_column("field", style="bold")
    table.add_column("value")
    for field in ("id", "status", "operation_type", "target", "event_type", "correlation_id",
                  "idempotency_key", "priority", "attempt", "max_retries", "retry_after", "lease_until",
                  "lease_owner", "fence", "timeout_seconds", "deferred_by", "last_error", "created_at",
                  "updated_at"):
        value = getattr(item, field)
        table.add_row(field, "" if value is None else str(value))
    table.add_row("payload", json.dumps(item.payload, indent=2, ensure_ascii=False))
    Console().print(table)


@app.command("replay")
def replay_command(  # noqa: PLR0917 - typer maps parameters to options
    item_id: int | None = typer.Argument(None, metavar="[ID]", help="One dead-lettered item."),
    operation_type: str | None = typer.Option(None, "--type", help="Every dead letter of this type."),
    all_dead: bool = typer.Option(False, "--all-dead", help="Every dead letter."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (bulk replays)."),
    config: Path | None = CONFIG_OPTION,
    database_url: str | None = URL_OPTION,
) -> None:
    """Put dead letters back to pending, attempts reset, due now."""
    chosen = sum(x is not None and x is not False for x in (item_id, operation_type, all_dead))
    if chosen != 1:
        raise fail("give exactly one of ID, --type T or --all-dead", EXIT_USAGE)
    url = resolve_url(config, database_url)
    if item_id is not None:
        async def one(store: RetryStore) -> int:
            item = await store.get(item_id)
            if item.status not in REQUEUEABLE_STATUSES:
                raise fail(f"item {item_id} is {item.status}, not a dead letter; nothing to replay",
                           EXIT_NOT_FOUND)
            return await store.requeue(ids=[item_id])

        moved = with_store(url, one)
        typer.echo(f"replayed item {item_id}" if moved else f"item {item_id} was not replayed")
        return

    async def count(store: RetryStore) -> int:
        rows = await store.stats()
        return sum(r.count for r in rows if r.status in REQUEUEABLE_STATUSES
                   and (operation_type is None or r.operation_type == operation_type))

    matching = with_store(url, count)
    what = f"of type '{operation_type}'" if operation_type else "of every type"
    if matching == 0:
        raise fail(f"no dead letters {what}", EXIT_NOT_FOUND)
    if not yes and not typer.confirm(f"replay {matching} dead letter(s) {what}?", default=False):
        raise fail("not confirmed; nothing replayed", EXIT_DECLINED)
    moved = with_store(url, lambda s: s.requeue(operation_type=operation_type, all_dead=all_dead))
    typer.echo(f"replayed {moved} dead letter(s) {what}")


@app.command("purge")
def purge_command(
    older_than: str = typer.Option(..., "--older-than", help="Age since last update, e.g. 7d, 12h, 30m."),
    status: str | None = typer.Option(
        None, "--status", help="Only this status (default: completed, failed and dead_letter)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    config: Path | None = CONFIG_OPTION,
    database_url: str | None = URL_OPTION,
) -> None:
    """Delete items last updated longer ago than --older-than."""
    age = parse_duration(older_than)
    check_status(status)
    url = resolve_url(config, database_url)
    which = status or "completed, failed and dead_letter"
    if not yes and not typer.confirm(f"delete {which} items older than {older_than}?", default=False):
        raise fail("not confirmed; nothing deleted", EXIT_DECLINED)
    removed = with_store(url, lambda s: s.purge(age, status))
    typer.echo(f"purged {removed} item(s)")
