"""``daz breakers``: show and operate a running instance's circuit breakers over its admin API.

Exit codes: 0 done; 1 the instance answered with an unexpected error; 3 the instance is unreachable;
4 the admin token is missing or wrong (or the admin API is off); 5 no breaker has that name.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "DAZ_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a token
REQUEST_TIMEOUT_SECONDS = 10.0
EXIT_ERROR, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_NOT_FOUND = 1, 3, 4, 5

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)

_URL = typer.Option(DEFAULT_URL, "--url", help="Base URL of the instance's health server.")
_SUB_URL = typer.Option(None, "--url", show_default=False,
                        help=f"Base URL of the instance's health server [default: {DEFAULT_URL}].")
_TOKEN = typer.Option(None, "--token", envvar=TOKEN_ENV, help="Admin token (or set DAZ_ADMIN_TOKEN).",
                      show_default=False)


class _Failure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


async def _request(method: str, url: str, token: str | None) -> Any:
    import aiohttp

    headers = {"X-Daz-Admin-Token": token} if token else {}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.request(method, url, headers=headers) as resp:
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = {}
            status = resp.status
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise _Failure(f"cannot reach daz at {url}: {type(exc).__name__}; is it running "
                       "with the health server on?", EXIT_UNREACHABLE) from exc
    except aiohttp.ClientError as exc:
        raise _Failure(f"request to {url} failed: {type(exc).__name__}", EXIT_ERROR) from exc
    error = body.get("error") if isinstance(body, dict) else None
    if status in (401, 403):
        hint = "" if token else f" (pass --token or set {TOKEN_ENV})"
        raise _Failure(f"refused ({status}): {error or 'admin token missing or wrong'}{hint}", EXIT_AUTH)
    if status == 404:
        raise _Failure(f"not found: {error or url}", EXIT_NOT_FOUND)
    if status >= 400 or not isinstance(body, dict | list):
        raise _Failure(f"unexpected answer {status} from {url}: {error or 'no JSON body'}", EXIT_ERROR)
    return body


def _run(method: str, url: str, token: str | None) -> Any:
    try:
        return asyncio.run(_request(method, url, token))
    except _Failure as failure:
        typer.echo(f"daz breakers: {failure}", err=True)
        raise typer.Exit(failure.code) from None


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
    cells = [[title for title, _ in _COLUMNS]] + [[_cell(r, key) for _, key in _COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in cells)


@app.callback()
def show(ctx: typer.Context, url: str = _URL, token: str | None = _TOKEN) -> None:
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
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    url = url or parent.get("url") or DEFAULT_URL
    token = token or parent.get("token")
    base = url.rstrip("/")
    body = _run("POST", f"{base}/api/breakers/{name}/{action}", token)
    new_state = body.get("state") if isinstance(body, dict) else None
    if new_state is None:  # the server did not say: read it back
        found = [r for r in _rows(_run("GET", f"{base}/api/breakers", token)) if r.get("name") == name]
        new_state = found[0].get("state") if found else "?"
    typer.echo(f"{name}: {new_state}")


@app.command("open")
def open_(ctx: typer.Context, name: str, url: str | None = _SUB_URL, token: str | None = _TOKEN) -> None:
    """Force NAME open: every call is refused until `close` or `reset`."""
    _act(ctx, "open", name, url, token)


@app.command("close")
def close(ctx: typer.Context, name: str, url: str | None = _SUB_URL, token: str | None = _TOKEN) -> None:
    """Force NAME closed with a fresh window."""
    _act(ctx, "close", name, url, token)


@app.command("reset")
def reset(ctx: typer.Context, name: str, url: str | None = _SUB_URL, token: str | None = _TOKEN) -> None:
    """Reset NAME: closed, fresh window, counters cleared."""
    _act(ctx, "reset", name, url, token)
