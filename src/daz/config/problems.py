"""One line per validation problem, in the user's words, never echoing a secret value."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_SECRET_FIELDS = {"password", "channel_password", "admin_token", "url", "pw"}
_SECRET_WORDS = ("password", "secret", "token", "dsn", "passwd")

# pydantic error type -> what the field needs, in the user's words (ctx values fill the braces).
_EXPECTED: dict[str, str] = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "float_parsing": "must be a number, e.g. 30 or 2.5",
    "float_type": "must be a number, e.g. 30 or 2.5",
    "int_parsing": "must be a whole number, e.g. 3",
    "int_type": "must be a whole number, e.g. 3",
    "int_from_float": "must be a whole number, e.g. 3",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string in quotes",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "dict_type": "must be a JSON object {{...}}",
    "model_type": "must be a JSON object {{...}}",
    "model_attributes_type": "must be a JSON object {{...}}",
    "list_type": "must be a JSON list [...]",
    "path_type": "must be a file path string",
}


def _is_secret_field(field: str) -> bool:
    name = field.lower()
    return name in _SECRET_FIELDS or any(word in name for word in _SECRET_WORDS)


def format_problem(err: Mapping[str, Any]) -> str:
    """One line: ``field.path: what is needed (got …)`` without echoing secret values.

    Example: ``retry.worker_count: must be at least 1 (got -3)``.
    """
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "invalid"))
    field = str(err.get("loc", ("",))[-1]) if err.get("loc") else ""
    shown = "" if _is_secret_field(field) else _short(err.get("input"))
    if kind == "extra_forbidden":
        return f"{loc}: unknown field; remove it or check its spelling (see docs/configuration.md)"
    if kind == "missing":
        return f"{loc}: required field is missing; add it (see docs/configuration.md)"
    got = f" (got {shown})" if shown else ""
    template = _EXPECTED.get(kind)
    if template is not None:
        try:
            return f"{loc}: {template.format(**dict(err.get('ctx') or {}))}{got}"
        except (KeyError, IndexError, ValueError):
            pass  # an unexpected ctx shape: fall back to pydantic's own words below
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg[0].lower() + msg[1:] if msg else msg}{got}"


def _short(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
