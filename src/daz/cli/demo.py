"""``daz demo``: the self-healing loop, offline, with a live display and a verified summary.

Exit code 0 only when the story held (nothing lost, nothing duplicated, the bot reconnected,
retries landed, the poison operation was dead-lettered and replayed); 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import typer

EXIT_OK = 0
EXIT_STORY_FAILED = 1


def demo_command(
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Leave the bot, fake server and status page up afterwards."
    ),
    time_limit: float = typer.Option(
        110.0, "--time-limit", min=10.0, help="Give up after this many seconds."
    ),
    workdir: Path | None = typer.Option(  # noqa: B008
        None, "--workdir", help="Keep the demo database and log here (default: a temporary directory)."
    ),
) -> None:
    """Run the offline self-healing demo (fake CyTube server, SQLite)."""
    from rich.console import Console

    from daz.demo.story import run_demo
    from daz.lifecycle import force_exit, install_signal_handlers
    from daz.logging import configure_logging

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 110))

    async def main(root: Path) -> bool:
        stopping = asyncio.Event()
        remove = install_signal_handlers(asyncio.get_running_loop(), stopping, on_force=force_exit)
        try:
            return await run_demo(console, stopping, keep_running=keep_running, time_limit=time_limit,
                                  workdir=root)
        finally:
            remove()

    with contextlib.ExitStack() as stack:
        if workdir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="daz-demo-")))
        else:
            root = workdir
            root.mkdir(parents=True, exist_ok=True)
        log_file = stack.enter_context((root / "daz-demo.log").open("w", encoding="utf-8"))
        # The display owns the terminal; the bot's own logs go to a file.
        configure_logging("info", "json", stream=log_file)
        held = asyncio.run(main(root))
        if workdir is not None:
            console.print(f"logs: {root / 'daz-demo.log'}", highlight=False)
    raise typer.Exit(EXIT_OK if held else EXIT_STORY_FAILED)
