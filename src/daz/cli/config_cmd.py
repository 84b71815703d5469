"""``daz config check FILE``: print the effective configuration (secrets masked) or its problems.

``daz config example`` prints the example configuration that ships with the package.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import typer

from daz.config import load_config, masked_dict
from daz.errors import ConfigError

app = typer.Typer(no_args_is_help=True)

EXIT_CONFIG_ERROR = 2
EXAMPLE_RESOURCE = ("examples", "config.example.json")


def example_text() -> str:
    """The shipped example configuration (``src/daz/examples/config.example.json``)."""
    return resources.files("daz").joinpath(*EXAMPLE_RESOURCE).read_text(encoding="utf-8")


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="The JSON configuration file to validate."),  # noqa: B008
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing when the file is valid."),
) -> None:
    """Validate FILE (plus DAZ_* environment overrides); exit 2 with one line per problem."""
    from daz.plugins.host import plugin_problems

    try:
        config = load_config(file)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    problems = plugin_problems(config.plugins)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(EXIT_CONFIG_ERROR)
    if not quiet:
        typer.echo(json.dumps(masked_dict(config), indent=2, sort_keys=False))


@app.command("example")
def example() -> None:
    """Print an example configuration file to start from (daz config example > daz.json)."""
    typer.echo(example_text(), nl=False)
