"""``daz run`` (filled by the bot issue)."""

import typer


def run_command() -> None:
    """Placeholder until the bot lands."""
    raise typer.Exit(1)
