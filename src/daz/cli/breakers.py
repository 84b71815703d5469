"""``daz breakers``: show and operate a running instance's circuit breakers over its admin API.

Exit codes: 0 done; 1 the instance answered with an unexpected error; 3 the instance is unreachable;
4 the admin token is missing or wrong (or the admin API is off); 5 no breaker has that name.
"""

from __future__ import annotations

from typing import Any

import typer

from daz.cli.admin_client import (  # noqa: F401 - the exit codes are part of this command's API
    DEFAULT_URL,
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    SUB_URL_OPTION,
    TOKEN_ENV,
    TOKEN_OPTION,
    URL_OPTION,
    admin_target,
    run_admin,
    text_table,
)

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)

def _run(method: str, url: str, token: str | None) -> Any:
    return run_admin("breakers", method, url, token)


_COLUMNS = (
    ("NAME", "name"), ("STATE", "state"), ("CALLS", "calls"), ("FAILED", "failures"),
    ("SLOW", "slow_calls"), ("FAIL%", "failure_rate"), ("SLOW%", "slow_rate"), ("REASON", "reason"),
    ("NEXT PROBE", "next_probe_at"),
)


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if key in ("failure_rate", "slow_rate"):
        return f"{float(value) * 100:.1f}"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The breakers as aligned text columns (one line per breaker)."""
    if not rows:
        return "no circuit breakers yet"
    return text_table(_COLUMNS, rows, _cell)


@app.callback()
def show(ctx: typer.Context, url: str = URL_OPTION, token: str | None = TOKEN_OPTION) -> None:
    """Show every breaker: state, window figures, failure and slow-call rates, next probe time."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"url": url, "token": token}
        return
    typer.echo(format_table(_rows(_run("GET", f"{url.rstrip('/')}/api/breakers", token))))


def _rows(body: Any) -> list[dict[str, Any]]:
    """The breaker rows of a ``GET /api/breakers`` answer (a list, or ``{"breakers": [...]}``)."""
    rows = body.get("breakers") if isinstance(body, dict) else body
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _act(ctx: typer.Context, action: str, name: str, url: str | None, token: str | None) -> None:
    base, token = admin_target(ctx, url, token)
    body = _run("POST", f"{base}/api/breakers/{name}/{action}", token)
    new_state = body.get("state") if isinstance(body, dict) else None
    if new_state is None:  # the server did not say: read it back
        found = [r for r in _rows(_run("GET", f"{base}/api/breakers", token)) if r.get("name") == name]
        new_state = found[0].get("state") if found else "?"
    typer.echo(f"{name}: {new_state}")


@app.command("open")
def open_(ctx: typer.Context, name: str, url: str | None = SUB_URL_OPTION,
        token: str | None = TOKEN_OPTION) -> None:
    """Force NAME open: every call is refused until `close` or `reset`."""
    _act(ctx, "open", name, url, token)


@app.command("close")
def close(ctx: typer.Context, name: str, url: str | None = SUB_URL_OPTION,
        token: str | None = TOKEN_OPTION) -> None:
    """Force NAME closed with a fresh window."""
    _act(ctx, "close", name, url, token)


@app.command("reset")
def reset(ctx: typer.Context, name: str, url: str | None = SUB_URL_OPTION,
        token: str | None = TOKEN_OPTION) -> None:
    """Reset NAME: closed, fresh window, counters cleared."""
    _act(ctx, "reset", name, url, token)
