"""`daz demo` as a new user runs it: a subprocess, no TTY, no network; exit code and final table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_offline_and_its_story_holds(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    env.pop("DAZ_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "daz", "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=150, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr}"
    assert "RESULT: the story held" in out

    def cell(label: str) -> str:
        match = re.search(rf"{re.escape(label)}\s*[│|]\s*([^│|]+?)\s*[│|]", out)
        assert match is not None, f"no '{label}' row in:\n{out}"
        return match.group(1)

    said = int(cell("chat lines said (server record)"))
    stored = int(cell("events received and stored"))
    assert said >= 30
    assert stored == said
    assert int(cell("reconnects")) >= 1
    assert cell("lines sent while offline, delivered") == "3/3"
    assert int(cell("retried SQL batches (attempts)").split()[0]) >= 1
    assert cell("dead letters (replayed)") == "1 (yes)"
    assert cell("lost") == "0"
    assert cell("duplicates") == "0"
    # The timeline tells the story in order, and says the timings are shortened.
    for step in ("1. users chat", "2. the CyTube server is killed", "production: 2s doubling to 300s",
                 "3. the database becomes unavailable", "breaker database: closed -> open",
                 "4. a poison operation", "dead letter #"):
        assert step in out
    assert out.index("2. the CyTube server") < out.index("3. the database") < out.index("4. a poison")
