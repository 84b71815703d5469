"""``daz demo`` (filled by the bot issue)."""

import typer


def demo_command() -> None:
    """Placeholder until the demo lands."""
    raise typer.Exit(1)
