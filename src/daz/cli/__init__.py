"""The ``daz`` command line. Each command group lives in its own module and registers here.

Signal handlers are installed only by commands in this package (``run``, ``demo``), never by
library code.
"""

from __future__ import annotations

import typer

from daz import __version__
from daz.cli import breakers, config_cmd, db, debug, demo, health, retry, rooms, run

app = typer.Typer(
    name="daz",
    help="daz: a self-healing runtime for CyTube chat bots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_cmd.app, name="config", help="Check and show the configuration.")
app.add_typer(retry.app, name="retry", help="Inspect and operate the persistent retry queue.")
app.add_typer(breakers.app, name="breakers", help="Show and operate circuit breakers.")
app.add_typer(rooms.app, name="rooms", help="List rooms (state and reason); stop or restart one.")
app.add_typer(health.app, name="health", help="Query a running daz instance's health.")
app.add_typer(db.app, name="db", help="Database schema and maintenance.")
app.add_typer(debug.app, name="debug", hidden=True, help="Tools for testing daz itself.")
app.command(name="run", help="Run the bot in the configured CyTube rooms.")(run.run_command)
app.command(name="demo", help="Run the offline self-healing demo (fake CyTube server, SQLite).")(
    demo.demo_command
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"daz {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """daz: a self-healing runtime for CyTube chat bots."""


def main() -> None:
    app()
