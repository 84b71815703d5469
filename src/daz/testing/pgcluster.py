"""A throwaway PostgreSQL cluster for tests that stop, kill or restart the database.

Never stop the shared server to test an outage: start one of these instead. It lives in a temp
dir (data, unix socket, log), listens only on 127.0.0.1 at a free port, and trades durability for
speed (``fsync=off``), which is fine for a cluster that is deleted afterwards.

The methods are synchronous (they run subprocesses and poll) and safe to call from a worker thread;
from async code use the ``a*`` twins (``await cluster.astart()``), which run them in
``asyncio.to_thread`` so the event loop — and the daz code under test — keeps running while the
database goes down or comes back. One cluster must not be driven from two threads at once.

Running as root (containers, CI): ``initdb`` and ``postgres`` refuse to run as root, so they run as
the ``postgres`` OS user through ``setpriv`` (which execs, so the process we hold *is* the
postmaster), with the temp dir handed to that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import psutil
import structlog

from daz.errors import DazError

log = structlog.get_logger("daz.testing.pgcluster")

PG_BIN_ENV = "DAZ_PG_BIN"
RUN_AS_USER = "postgres"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
INITDB_TIMEOUT_SECONDS = 120.0
_POLL_SECONDS = 0.05
_BIND_RETRIES = 3

StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


class PgClusterError(DazError):
    """The throwaway cluster could not be created, started or stopped (the message says why)."""


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None when PostgreSQL is not installed.

    Order: ``$DAZ_PG_BIN``; the directory of ``initdb`` on PATH; the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian/Ubuntu put the server binaries off PATH).
    """
    candidates: list[Path] = []
    if env := os.environ.get(PG_BIN_ENV):
        candidates.append(Path(env))
    if found := shutil.which("initdb"):
        candidates.append(Path(found).parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    candidates.extend(versions)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (for skip/fail messages), or None when it can."""
    if find_pg_bin() is None:
        return (
            "PostgreSQL server binaries (initdb, postgres) not found: "
            f"install them or set {PG_BIN_ENV} to their directory"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS_USER)
        except KeyError:
            return f"running as root and there is no '{RUN_AS_USER}' OS user to run initdb/postgres as"
        if shutil.which("setpriv") is None:
            return "running as root and setpriv (util-linux) is missing to drop privileges"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the bind race is retried by ``start``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """One throwaway PostgreSQL cluster: ``create()`` once, then start/stop/kill9/restart freely.

    ``with PgCluster() as pg:`` creates and starts it and removes everything on exit (also
    ``async with``). ``dsn`` stays the same across restarts, so clients can reconnect.
    """

    def __init__(
        self,
        *,
        pg_bin: Path | None = None,
        database: str = "postgres",
        user: str = "postgres",
        shared_buffers: str = "16MB",
        max_connections: int = 100,
        extra_settings: dict[str, str] | None = None,
    ) -> None:
        self._bin = pg_bin
        self.database = database
        self.user = user
        self._settings: dict[str, str] = {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": shared_buffers,
            "max_connections": str(max_connections),
            "logging_collector": "off",
            **(extra_settings or {}),
        }
        self._root: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: int | None = None

    # -- facts ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise PgClusterError("cluster has no port yet: call create() or start() first")
        return self._port

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres`` (trust auth: no password)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def root(self) -> Path:
        if self._root is None:
            raise PgClusterError("cluster not created: call create() first")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def is_running(self) -> bool:
        return self.pid is not None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self) -> None:
        """initdb into a fresh temp dir (idempotent)."""
        if self._root is not None:
            return
        reason = unavailable_reason()
        if reason is not None:
            raise PgClusterError(reason)
        pg_bin = self._bin or find_pg_bin()
        if pg_bin is None:
            raise PgClusterError("PostgreSQL server binaries not found")
        self._bin = pg_bin
        root = Path(tempfile.mkdtemp(prefix="daz-pg-"))
        self._root = root
        self.socket_dir.mkdir()
        self.log_path.touch()
        self._chown_tree(root)
        started = time.monotonic()
        result = subprocess.run(
            [
                *self._as_user(),
                str(pg_bin / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            timeout=INITDB_TIMEOUT_SECONDS,
            check=False,
            cwd=root,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
            self.destroy()
            raise PgClusterError(f"initdb failed (exit {result.returncode}): {output}")
        log.info("pgcluster.created", root=str(root), seconds=round(time.monotonic() - started, 2))

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the postmaster and wait until it accepts connections (crash recovery included)."""
        self.create()
        if self.is_running():
            return
        fixed_port = self._port is not None
        for attempt in range(_BIND_RETRIES):
            if not fixed_port:
                self._port = free_port()
            self._spawn()
            if self._wait_ready(timeout):
                log.info("pgcluster.started", port=self._port, pid=self.pid)
                return
            tail = self.log_tail()
            self._reap()
            port_taken = "could not bind" in tail or "Address already in use" in tail
            if fixed_port or not port_taken or attempt == _BIND_RETRIES - 1:
                raise PgClusterError(f"postgres did not become ready on port {self._port}: {tail}")
            self._port = None
        raise PgClusterError("unreachable")  # pragma: no cover - the loop always returns or raises

    def stop(self, mode: StopMode = "fast", timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Shut down (smart = wait for clients, fast = disconnect them, immediate = no checkpoint)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._reap()
            return
        proc.send_signal(_STOP_SIGNALS[mode])
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pgcluster.stop_timeout", mode=mode, timeout=timeout)
            self._kill_tree()
        self._reap()
        log.info("pgcluster.stopped", mode=mode, port=self._port)

    def kill9(self) -> None:
        """SIGKILL the postmaster and every backend at once, like an OOM kill or a power cut.

        Killing only the postmaster would leave backends attached to shared memory, which makes
        the next start refuse to run until they notice and exit; a crash test wants the restart to
        run crash recovery, not to race orphans.
        """
        if self._proc is None:
            return
        self._kill_tree()
        self._reap()
        log.info("pgcluster.killed", port=self._port)

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop (immediately) and remove the temp dir; the cluster cannot be started again."""
        if self.is_running():
            self.stop("immediate")
        self._reap()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # -- async twins ---------------------------------------------------------------------------

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, mode: StopMode = "fast") -> None:
        await asyncio.to_thread(self.stop, mode)

    async def akill9(self) -> None:
        await asyncio.to_thread(self.kill9)

    async def arestart(self, mode: StopMode = "fast") -> None:
        await asyncio.to_thread(self.restart, mode)

    async def adestroy(self) -> None:
        await asyncio.to_thread(self.destroy)

    # -- context managers ----------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()

    async def __aenter__(self) -> Self:
        try:
            await self.astart()
        except BaseException:
            await self.adestroy()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.adestroy()

    # -- internals -----------------------------------------------------------------------------

    def _as_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", f"--reuid={RUN_AS_USER}", f"--regid={RUN_AS_USER}", "--init-groups", "--"]

    def _chown_tree(self, root: Path) -> None:
        if os.geteuid() != 0:
            return
        entry = pwd.getpwnam(RUN_AS_USER)
        for path in [root, *root.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _spawn(self) -> None:
        if self._bin is None:
            raise PgClusterError("cluster not created: call create() first")
        argv = [
            *self._as_user(),
            str(self._bin / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for key, value in self._settings.items():
            argv += ["-c", f"{key}={value}"]
        self._log_file = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # A new session: the postmaster must not receive the test runner's Ctrl-C, and it keeps
        # its backends in one process group we can reason about.
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            start_new_session=True,
            env=env,
            cwd=self.root,
        )

    def _wait_ready(self, timeout: float) -> bool:
        proc = self._proc
        if proc is None:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if self._status_ready() and self._tcp_accepts():
                return True
            time.sleep(_POLL_SECONDS)
        return False

    def _status_ready(self) -> bool:
        # Line 8 of postmaster.pid is the postmaster's status; "ready" once it accepts connections.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def _tcp_accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _kill_tree(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            parent = psutil.Process(proc.pid)
            children = parent.children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.wait(STOP_TIMEOUT_SECONDS)
        _wait_gone(children, STOP_TIMEOUT_SECONDS)

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._kill_tree()
        self._proc = None
        if self._log_file is not None:
            os.close(self._log_file)
            self._log_file = None


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until every process has exited; a zombie counts as gone (its reaper is not us)."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending and time.monotonic() < deadline:
        still: list[psutil.Process] = []
        for proc in pending:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    still.append(proc)
            except psutil.NoSuchProcess:
                pass
        pending = still
        if pending:
            time.sleep(_POLL_SECONDS / 5)
