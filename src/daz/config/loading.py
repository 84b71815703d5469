"""Loading: a JSON file, ``DAZ_*`` environment overrides, validation into ``DazConfig``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from daz.config.problems import format_problem
from daz.config.root import DazConfig
from daz.errors import ConfigError

ENV_PREFIX = "DAZ_"
DATABASE_URL_ENV = "DAZ_DATABASE_URL"


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> DazConfig:
    """Read ``path`` (JSON; optional), apply ``DAZ_*`` overrides, validate. Raises ``ConfigError``."""
    environ = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_json(path)
    apply_env_overrides(raw, environ)
    return validate_config(raw, source=str(path) if path is not None else "environment")


def validate_config(raw: Mapping[str, Any], source: str = "config") -> DazConfig:
    try:
        return DazConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [format_problem(err) for err in exc.errors()]
        raise ConfigError(f"{source}: {len(problems)} problem(s) in the configuration", problems) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: file not found; pass an existing JSON file (see docs/configuration.md)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8 JSON") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:  # found by the chaos fuzzer: "[" * 100000 overflows json's decoder
        raise ConfigError(f"{path}: JSON nested too deeply to read") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object {{...}}, got {type(data).__name__}")
    return data


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """``DAZ_RETRY__WORKER_COUNT=5`` sets ``retry.worker_count``; ``DAZ_DATABASE_URL`` the store URL.

    Values are strings that pydantic converts to the field's type (``"5"`` → 5, ``"true"`` → True),
    so a numeric password stays a string; values that look like JSON objects, lists or ``null``
    are parsed as JSON. Numeric segments index existing list entries (``DAZ_ROOMS__0__PASSWORD``);
    an index past the end is an error, not a silently ignored setting.
    """
    if DATABASE_URL_ENV in environ:
        raw.setdefault("database", {})
        if isinstance(raw["database"], dict):
            raw["database"]["url"] = environ[DATABASE_URL_ENV]
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key == DATABASE_URL_ENV or "__" not in key:
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
        _set_path(raw, path, _parse_env_value(value), key)


def _parse_env_value(value: str) -> Any:
    text = value.strip()
    if not (text.startswith(("{", "[")) or text == "null"):
        return value
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return value


def _set_path(node: Any, path: list[str], value: Any, env_key: str = "") -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                where = ".".join(path[:i]) or "(top level)"
                raise ConfigError(
                    f"{env_key}: {where} has {len(node)} entries, so '{part}' is not an index into it; "
                    "list entries must exist in the file before the environment can override them"
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
        else:
            return
