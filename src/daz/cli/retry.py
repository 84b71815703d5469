"""CLI group: retry (filled by its subsystem)."""

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("todo")
def _todo() -> None:
    """Placeholder until the retry subsystem lands."""
    raise typer.Exit(1)
