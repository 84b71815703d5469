"""``daz config check`` as a user runs it: a real subprocess, its exit code and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BOT_PASSWORD = "Bot-Pa55word-xyz"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAZ_")}
    env["NO_COLOR"] = "1"
    return env


def _daz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daz", *args], capture_output=True, text=True, timeout=60, env=_env(),
        check=False,
    )


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "daz.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def test_three_mistakes_three_lines_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, {
        "rooms": [{"channel": "lobby", "username": "bot", "password": BOT_PASSWORD}],
        "retry": {
            "worker_count": -3,
            "retry_policies": {"cytube_command": {"max_delay_seconds": "five minutes"}},
            "poll_intervall_seconds": 10,
        },
    })
    result = _daz("config", "check", str(path))
    print(f"\n$ daz config check {path.name}  -> exit {result.returncode}\n{result.stderr}")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert sorted(lines) == sorted([
        "error: retry.worker_count: must be at least 1 (got -3)",
        "error: retry.retry_policies.cytube_command.max_delay_seconds: must be a number, e.g. 30 or 2.5 "
        '(got "five minutes")',
        "error: retry.poll_intervall_seconds: unknown field; remove it or check its spelling "
        "(see docs/configuration.md)",
    ])
    assert "Traceback" not in result.stderr
    assert BOT_PASSWORD not in result.stdout + result.stderr


def test_good_file_exit_0_password_masked(tmp_path: Path) -> None:
    path = _write(tmp_path, {
        "rooms": [{"channel": "lobby", "username": "bot", "password": BOT_PASSWORD}],
        "database": {"url": "postgresql://daz:db-Secret-1@127.0.0.1:5432/daz"},
        "retry": {"worker_count": 4},
    })
    result = _daz("config", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert BOT_PASSWORD not in result.stdout + result.stderr
    assert "db-Secret-1" not in result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["rooms"][0]["password"] == "**********"
    assert shown["database"]["url"] == "postgresql://daz:**********@127.0.0.1:5432/daz"
    assert shown["retry"]["worker_count"] == 4
    assert shown["retry"]["poll_interval_seconds"] == 10  # defaults are filled in


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = _daz("config", "check", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.json'}: file not found; " \
        "pass an existing JSON file (see docs/configuration.md)"


def test_shipped_example_checks_clean(tmp_path: Path) -> None:
    example = _daz("config", "example")
    assert example.returncode == 0
    path = tmp_path / "example.json"
    path.write_text(example.stdout, encoding="utf-8")
    result = _daz("config", "check", "--quiet", str(path))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
