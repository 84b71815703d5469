"""``daz health``: ask a running daz for ``/health`` and print it; the exit code is the verdict.

Exit codes (for cron and container health checks): 0 pass, 1 warn, 2 fail, 3 unreachable or
not a daz health endpoint.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from daz.cli.admin_client import DEFAULT_URL

EXIT_CODES = {"pass": 0, "warn": 1, "fail": 2}
EXIT_UNREACHABLE = 3

app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


async def fetch_health(url: str, timeout: float) -> tuple[int, dict[str, Any]]:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
            session.get(url.rstrip("/") + "/health") as resp:
        body = json.loads(await resp.text())
        if not isinstance(body, dict):
            raise TypeError("the /health answer is not a JSON object")
        return resp.status, body


def render(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"pass": "green", "warn": "yellow", "fail": "red"}
    status = str(doc.get("status", "?"))
    console = Console()
    console.print(f"daz {doc.get('releaseId', '')}: [bold {colours.get(status, 'white')}]{status}[/]")
    if doc.get("output"):
        console.print(str(doc["output"]))
    table = Table("check", "component", "status", "observed", "output")
    for key, entries in sorted(dict(doc.get("checks", {})).items()):
        for entry in entries:
            entry_status = str(entry.get("status", "?"))
            observed = entry.get("observedValue")
            unit = entry.get("observedUnit")
            shown = "" if observed is None else f"{observed}{' ' + unit if unit else ''}"
            table.add_row(key, str(entry.get("componentId", "")),
                          f"[{colours.get(entry_status, 'white')}]{entry_status}[/]", shown,
                          str(entry.get("output", "")))
    console.print(table)


@app.callback()
def health_command(
    url: str = typer.Option(DEFAULT_URL, "--url", help="Base URL of the daz health server."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw application/health+json document."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for an answer."),
) -> None:
    """Query a running daz instance's /health. Exit 0 pass, 1 warn, 2 fail, 3 unreachable."""
    import aiohttp

    try:
        _code, doc = asyncio.run(fetch_health(url, timeout))
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError, TypeError) as exc:
        typer.echo(f"daz health: cannot read {url.rstrip('/')}/health: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    status = str(doc.get("status"))
    if status not in EXIT_CODES:
        typer.echo(f"daz health: {url}/health answered status {status!r}, not pass/warn/fail", err=True)
        raise typer.Exit(EXIT_UNREACHABLE)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        render(doc)
    raise typer.Exit(EXIT_CODES[status])
