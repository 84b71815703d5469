"""Real signals to a real ``daz`` process: the first drains (exit 0), the second forces (128+n)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO

import pytest

READY_TIMEOUT = 30.0


class Proc:
    """A ``python -m daz debug idle`` child whose JSON log lines are collected by a reader thread."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAZ_")}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "daz", "debug", "idle", "--log-format", "json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: list[dict[str, object]] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        assert self.popen.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.popen.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.raw.append(line)
                with suppress(json.JSONDecodeError):
                    self.lines.append(json.loads(line))
                self._cond.notify_all()

    def events(self) -> list[object]:
        with self._cond:
            return [line.get("event") for line in self.lines]

    def wait_for(self, event: str, timeout: float, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for line in self.lines if line.get("event") == event) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.popen.poll() is not None:
                    pytest.fail(f"no {event!r} (x{count}) within {timeout}s; got:\n{''.join(self.raw)}")
                self._cond.wait(min(remaining, 0.5))

    def finish(self, timeout: float) -> int:
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@contextmanager
def idle(*args: str) -> Iterator[Proc]:
    proc = Proc(*args)
    try:
        yield proc
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait(timeout=10)
        for stream in (proc.popen.stdout, proc.popen.stderr):
            if stream is not None:
                stream.close()


def test_sigterm_drains_and_exits_0_within_grace() -> None:
    grace = 5.0
    with idle("--grace", str(grace), "--drain-seconds", "0.3") as proc:
        proc.wait_for("debug.idle.ready", READY_TIMEOUT)
        proc.wait_for("debug.idle.started", READY_TIMEOUT)
        sent = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        code = proc.finish(timeout=grace + 10)
        elapsed = time.monotonic() - sent
    print(f"\nSIGTERM -> exit {code} after {elapsed:.2f}s (grace {grace}s)")
    assert code == 0
    assert elapsed < grace
    events = proc.events()
    for expected in ("lifecycle.signal", "debug.idle.draining", "debug.idle.drained",
                     "lifecycle.stopped", "debug.idle.exit"):
        assert expected in events
    assert events.index("debug.idle.draining") < events.index("debug.idle.drained")
    assert "lifecycle.service_cancelled" not in events


def test_crashing_service_is_restarted_then_sigterm_exits_0() -> None:
    with idle("--grace", "5", "--crash-every", "0.2") as proc:
        proc.wait_for("debug.idle.ready", READY_TIMEOUT)
        proc.wait_for("lifecycle.service_restarting", 20, count=2)  # crashed twice, restarted twice
        proc.popen.send_signal(signal.SIGTERM)
        code = proc.finish(timeout=15)
    assert code == 0
    crashes = [line for line in proc.lines if line.get("event") == "lifecycle.service_crashed"]
    assert [c["attempt"] for c in crashes[:2]] == [1, 2]


def test_grace_expiry_cancels_a_stubborn_service_and_exits_0() -> None:
    with idle("--grace", "0.5", "--stubborn") as proc:
        proc.wait_for("debug.idle.ready", READY_TIMEOUT)
        proc.popen.send_signal(signal.SIGINT)
        code = proc.finish(timeout=15)
    assert code == 0
    assert "lifecycle.grace_expired" in proc.events()
    assert "lifecycle.service_cancelled" in proc.events()


def test_second_signal_forces_exit_143() -> None:
    with idle("--grace", "60", "--stubborn") as proc:
        proc.wait_for("debug.idle.ready", READY_TIMEOUT)
        proc.popen.send_signal(signal.SIGTERM)
        proc.wait_for("lifecycle.draining", 10)
        proc.popen.send_signal(signal.SIGTERM)
        code = proc.finish(timeout=15)
    assert code == 128 + signal.SIGTERM
    actions = [line.get("action") for line in proc.lines if line.get("event") == "lifecycle.signal"]
    assert actions == ["drain", "force_exit"]
