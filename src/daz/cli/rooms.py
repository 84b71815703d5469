"""``daz rooms``: list a running instance's rooms and stop or restart one, over its admin API.

``daz rooms`` shows every room with its state, the reason for it, its attempt counter and server;
``daz rooms stop NAME`` leaves the room and keeps it STOPPED (its socket slot goes to a parked room);
``daz rooms restart NAME`` makes a STOPPED, KICKED or PARKED room try again now (e.g. after fixing
its password file). Exit codes as ``daz breakers`` (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

import typer

from daz.cli.admin_client import (
    SUB_URL_OPTION,
    TOKEN_OPTION,
    URL_OPTION,
    admin_target,
    run_admin,
    text_table,
)

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)

_COLUMNS = (("ROOM", "name"), ("STATE", "state"), ("ATTEMPT", "attempt"), ("SERVER", "server"),
            ("REASON", "reason"))


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rooms as aligned text columns; the reason is shown for every room that is not READY."""
    if not rows:
        return "no rooms configured"
    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if key == "reason" and row.get("state") == "ready":
            return ""
        return "-" if value is None or value == "" else str(value)
    return text_table(_COLUMNS, rows, cell)


def _summary(rows: list[dict[str, Any]]) -> str:
    parked = sum(1 for r in rows if r.get("state") == "parked")
    stopped = sum(1 for r in rows if r.get("state") in ("stopped", "kicked"))
    ready = sum(1 for r in rows if r.get("state") == "ready")
    return f"{len(rows)} rooms: {ready} ready, {parked} parked, {stopped} stopped or kicked"


@app.callback()
def show(ctx: typer.Context, url: str = URL_OPTION, token: str | None = TOKEN_OPTION) -> None:
    """Show every room: state, attempt, server and the reason of every room that is not READY."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"url": url, "token": token}
        return
    body = run_admin("rooms", "GET", f"{url.rstrip('/')}/api/rooms", token)
    rows = [r for r in body if isinstance(r, dict)] if isinstance(body, list) else []
    typer.echo(format_table(rows))
    if rows:
        typer.echo(_summary(rows))


def _act(ctx: typer.Context, action: str, name: str, url: str | None, token: str | None) -> None:
    base, token = admin_target(ctx, url, token)
    run_admin("rooms", "POST", f"{base}/api/rooms/{name}/{action}", token)
    typer.echo(f"{name}: {action} requested")


@app.command("stop")
def stop(ctx: typer.Context, name: str, url: str | None = SUB_URL_OPTION,
        token: str | None = TOKEN_OPTION) -> None:
    """Leave room NAME and keep it STOPPED until `restart` (its socket slot goes to a parked room)."""
    _act(ctx, "stop", name, url, token)


@app.command("restart")
def restart(ctx: typer.Context, name: str, url: str | None = SUB_URL_OPTION,
        token: str | None = TOKEN_OPTION) -> None:
    """Make room NAME try again now (STOPPED, KICKED or PARKED; e.g. after fixing a password)."""
    _act(ctx, "restart", name, url, token)
