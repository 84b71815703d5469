"""A process harness: run ``daz run`` (or any command) as a subprocess and abuse it.

::

    proc = DazProcess.daz_run("--config", str(config_path), env={"DAZ_LOGGING__FORMAT": "json"},
                              output_path=tmp_path / "daz.log")
    async with proc:                                 # start; on exit stop (SIGTERM, then SIGKILL)
        await proc.wait_for_line("app.started", timeout=20)
        proc.sigkill()                               # crash
        await proc.restart()                         # same argv/env, output appended
        proc.sigstop(); ...; proc.sigcont()          # pause past a lease, then resume

Output (stdout and stderr together) goes to one file that survives restarts, so a test can scan
every line the process ever wrote (the secrets scan does). ``wait_for_line`` only looks at output
written since the latest start unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import structlog

log = structlog.get_logger("daz.testing.process")

_POLL_SECONDS = 0.02
DEFAULT_STOP_GRACE_SECONDS = 10.0


class ProcessError(Exception):
    """The harnessed process did not do what the test waited for (the message holds its output tail)."""


class DazProcess:
    """One subprocess with its output in a file; restartable with the same argv and env."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: Path | None = None,
        output_path: Path | None = None,
        name: str = "daz",
    ) -> None:
        if not argv:
            raise ValueError("argv must not be empty")
        self.argv = list(argv)
        self.name = name
        self.cwd = cwd
        self.env = {**(os.environ if inherit_env else {}), **(env or {})}
        if output_path is None:
            fd, raw = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
            os.close(fd)
            output_path = Path(raw)
        self.output_path = output_path
        self.output_path.touch()
        self._proc: asyncio.subprocess.Process | None = None
        self._out: IO[bytes] | None = None
        self._run_offset = 0
        self.starts = 0
        self.exit_codes: list[int] = []

    @classmethod
    def daz_run(
        cls,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        output_path: Path | None = None,
        name: str = "daz",
    ) -> DazProcess:
        """``python -m daz run <args>`` with this interpreter (so the same virtualenv)."""
        return cls(
            [sys.executable, "-m", "daz", "run", *args], env=env, cwd=cwd, output_path=output_path, name=name
        )

    # -- facts ---------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    def is_running(self) -> bool:
        return self.pid is not None

    def mark(self) -> int:
        """The current end of the output file; pass it as ``since`` to wait for a later line."""
        return self.output_path.stat().st_size

    def output(self, since: int = 0) -> str:
        with self.output_path.open("rb") as fh:
            fh.seek(since)
            return fh.read().decode(errors="replace")

    def lines(self, since: int = 0) -> list[str]:
        return self.output(since).splitlines()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.lines()[-lines:])

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.is_running():
            return
        self._close_output()
        self._out = self.output_path.open("ab")
        self._run_offset = self.mark()
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._out,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            # Its own session: the test runner's Ctrl-C is not the child's, and signals we send
            # reach any helper processes it started.
            start_new_session=True,
        )
        self.starts += 1
        log.info("process.started", name=self.name, pid=self._proc.pid, start=self.starts)

    async def wait(self, timeout: float) -> int:
        """Wait for the process to exit; returns its exit code (negative = killed by that signal)."""
        if self._proc is None:
            raise ProcessError(f"{self.name} was never started")
        try:
            code = await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError as exc:
            raise ProcessError(f"{self.name} did not exit within {timeout}s:\n{self.tail()}") from exc
        self._record_exit(code)
        return code

    async def stop(self, grace: float = DEFAULT_STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM (after SIGCONT, in case it is paused); SIGKILL if it has not exited within ``grace``."""
        if not self.is_running():
            self._close_output()
            return self.returncode
        self.sigcont()
        self.sigterm()
        try:
            return await self.wait(grace)
        except ProcessError:
            log.warning("process.stop_timeout", name=self.name, grace=grace)
            self.sigkill()
            return await self.wait(DEFAULT_STOP_GRACE_SECONDS)
        finally:
            self._close_output()

    async def kill(self) -> int | None:
        """SIGKILL and wait for the exit."""
        if not self.is_running():
            return self.returncode
        self.sigkill()
        code = await self.wait(DEFAULT_STOP_GRACE_SECONDS)
        self._close_output()
        return code

    async def restart(self, *, kill: bool = False, grace: float = DEFAULT_STOP_GRACE_SECONDS) -> None:
        """Stop (or SIGKILL with ``kill=True``) and start again with the same argv and env."""
        if kill:
            await self.kill()
        else:
            await self.stop(grace)
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- signals -------------------------------------------------------------------------------

    def sigkill(self) -> None:
        self._signal(signal.SIGKILL)

    def sigterm(self) -> None:
        self._signal(signal.SIGTERM)

    def sigint(self) -> None:
        self._signal(signal.SIGINT)

    def sigstop(self) -> None:
        self._signal(signal.SIGSTOP)

    def sigcont(self) -> None:
        self._signal(signal.SIGCONT)

    # -- waiting for output --------------------------------------------------------------------

    async def wait_for_line(
        self, pattern: str | re.Pattern[str], *, timeout: float, since: int | None = None
    ) -> str:
        """The first output line (since the latest start, or ``since``) matching ``pattern``.

        ``pattern`` is a regular expression searched in each line. Fails fast, with the output tail,
        when the process exits first or ``timeout`` seconds pass.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        offset = self._run_offset if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines(offset):
                if regex.search(line):
                    return line
            if self._proc is not None and self._proc.returncode is not None:
                raise ProcessError(
                    f"{self.name} exited ({self._proc.returncode}) before printing /{regex.pattern}/:\n"
                    f"{self.tail()}"
                )
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"{self.name}: no line /{regex.pattern}/ within {timeout}s:\n{self.tail()}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    # -- internals -----------------------------------------------------------------------------

    def _signal(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        log.info("process.signalled", name=self.name, pid=pid, signal=sig.name)

    def _record_exit(self, code: int) -> None:
        if len(self.exit_codes) < self.starts:
            self.exit_codes.append(code)
            log.info("process.exited", name=self.name, code=code)

    def _close_output(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
