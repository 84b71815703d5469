"""The example third-party plugins under examples/ pass their own test suites."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize(("name", "package"), [("daz-dice", "daz_dice"), ("daz-dj", "daz_dj")])
def test_example_plugin_suite_passes(name: str, package: str) -> None:
    example = EXAMPLES / name
    assert (example / "src" / package / "__init__.py").is_file()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(example / "src"),
                                                                     os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(example),
         "-c", str(example / "pyproject.toml"), str(example / "tests")],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
