"""Shape checks for server payloads, shared by the chat protocol and the channel-state events.

Each helper raises ``Bad`` when the payload does not have the promised shape; ``protocol.parse``
turns that (and the usual ``TypeError``/``ValueError``...) into a ``Malformed`` event.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard


class Bad(Exception):
    """Internal: the payload does not have the promised shape."""


def obj(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Bad(f"expected an object, got {type(data).__name__}")
    return data


def string(o: dict[str, Any], key: str, limit: int) -> str:
    value = o.get(key)
    if not isinstance(value, str):
        raise Bad(f"{key} is not a string")
    if len(value) > limit:
        raise Bad(f"{key} is longer than {limit} characters")
    return value


def is_number(value: Any) -> TypeGuard[int | float]:
    # Python's json module accepts Infinity and NaN; neither is a time, a rank or a duration.
    if type(value) is int:
        return True
    return type(value) is float and math.isfinite(value)


def integer(o: dict[str, Any], key: str) -> int:
    value = o.get(key)
    if not is_number(value):
        raise Bad(f"{key} is not a finite number")
    return int(value)


def number(o: dict[str, Any], key: str, default: float = 0) -> float:
    value = o.get(key, default)
    if not is_number(value):
        raise Bad(f"{key} is not a finite number")
    return float(value)
