"""The admin API over HTTP for the command line (``daz breakers``, ``daz rooms``).

Exit codes: 0 done; 1 the instance answered with an unexpected error; 3 the instance is unreachable;
4 the admin token is missing or wrong (or the admin API is off); 5 no such breaker or room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import typer

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "DAZ_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a token
REQUEST_TIMEOUT_SECONDS = 10.0
EXIT_ERROR, EXIT_UNREACHABLE, EXIT_AUTH, EXIT_NOT_FOUND = 1, 3, 4, 5

# The options every admin command takes. A subcommand's --url defaults to None so that the one given
# to the group (``daz rooms --url X stop NAME``) is used unless the subcommand names its own.
URL_OPTION = typer.Option(DEFAULT_URL, "--url", help="Base URL of the instance's health server.")
SUB_URL_OPTION = typer.Option(
    None, "--url", show_default=False,
    # round brackets: rich would take "[default: ...]" for markup and drop it from the help
    help=f"Base URL of the instance's health server (default: the group's --url, else {DEFAULT_URL}).")
TOKEN_OPTION = typer.Option(None, "--token", envvar=TOKEN_ENV, help="Admin token (or set DAZ_ADMIN_TOKEN).",
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


def run_admin(command: str, method: str, url: str, token: str | None) -> Any:
    """One admin request; a failure is one line on stderr (``daz <command>: …``) and its exit code."""
    try:
        return asyncio.run(_request(method, url, token))
    except _Failure as failure:
        typer.echo(f"daz {command}: {failure}", err=True)
        raise typer.Exit(failure.code) from None


def admin_target(ctx: typer.Context, url: str | None, token: str | None) -> tuple[str, str | None]:
    """A subcommand's base URL (no trailing slash) and token: its own options, else the group's
    (kept in ``ctx.obj`` by the group's callback), else the defaults."""
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    base = (url or parent.get("url") or DEFAULT_URL).rstrip("/")
    return base, token or parent.get("token")


def text_table(columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]],
               cell: Callable[[dict[str, Any], str], str]) -> str:
    """``rows`` as aligned text columns: a title line, then one line per row (``cell`` renders one)."""
    cells = [[title for title, _ in columns]] + [[cell(r, key) for _, key in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in cells)
