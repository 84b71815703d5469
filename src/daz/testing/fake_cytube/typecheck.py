"""CyTube's typechecked events: a wrong payload type is answered with ``errorMsg`` (ioserver.js)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# key -> "type[,type][,optional]" as in CyTube's templates
TEMPLATES: Mapping[str, Mapping[str, str]] = {
    "queue": {
        "id": "string,boolean",
        "type": "string",
        "pos": "string",
        "title": "string,boolean,optional",
        "duration": "number,optional",
        "temp": "boolean,optional",
    },
    "setTemp": {"uid": "number", "temp": "boolean"},
    "moveMedia": {"from": "number", "after": "string,number"},
    "assignLeader": {"name": "string"},
    "mediaUpdate": {
        "id": "string",
        "currentTime": "number",
        "paused": "boolean,optional",
        "type": "string,optional",
    },
    "newPoll": {"title": "string", "timeout": "number,optional", "obscured": "boolean", "opts": "array"},
    "vote": {"option": "number"},
    "setChannelRank": {"name": "string", "rank": "number"},
    "setMotd": {"motd": "string"},
    "unban": {"id": "number", "name": "string"},
}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


def check(event: str, data: Any) -> str | None:
    """None if ``data`` fits ``event``'s template, else the errorMsg text the real server sends."""
    template = TEMPLATES.get(event)
    if template is None:
        return None
    prefix = f"Unexpected error for message {event}: "
    if not isinstance(data, dict):
        return prefix + f"Expected object, instead got {_type_of(data)}"
    for key, spec in template.items():
        types = [t for t in spec.split(",") if t != "optional"]
        if key not in data or data[key] is None:
            if "optional" in spec:
                continue
            return prefix + f"Missing key: {','.join(types)}:{key}"
        actual = _type_of(data[key])
        if actual not in types:
            return prefix + f"Expected key {key} to be of type {','.join(types)}, instead got {actual}"
    return None
