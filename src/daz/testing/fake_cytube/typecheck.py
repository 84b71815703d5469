"""CyTube's typechecked events: a wrong payload is answered with ``errorMsg`` (ioserver.js
``typecheckedOn``, which runs the ``json-typecheck`` package; its rules and texts, measured on 3.86):

- the payload must be an object: ``Expected type object, got string`` (no payload: ``got undefined``);
- each template key in template order: absent and not optional → ``Missing key: <spec>:<key>``;
  present with another type (``null`` included, even for an optional key) →
  ``Expected key <key> to be of type <spec>, instead got <type>``, where ``<spec>`` is the template
  text as written (``string,boolean,optional``);
- then any key the template lacks → ``Extra key: <key>`` (the first, in the payload's order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# key -> "type[,type][,optional]", exactly as in CyTube's templates (key order matters)
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
    "newPoll": {
        "title": "string",
        "timeout": "number,optional",
        "obscured": "boolean",
        "retainVotes": "boolean,optional",
        "opts": "array",
    },
    "vote": {"option": "number"},
    "setChannelRank": {"name": "string", "rank": "number"},
    "setMotd": {"motd": "string"},
    "unban": {"id": "number", "name": "string"},
    "chatMsg": {"msg": "string", "meta": "object,optional"},
    "pm": {"msg": "string", "to": "string", "meta": "object,optional"},
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
        # A frame without a payload reaches the handler as None here and as undefined there.
        got = "undefined" if data is None else _type_of(data)
        return prefix + f"Expected type object, got {got}"
    for key, spec in template.items():
        if key not in data:
            if "optional" in spec:
                continue
            return prefix + f"Missing key: {spec}:{key}"
        actual = _type_of(data[key])
        if actual not in spec.split(","):
            return prefix + f"Expected key {key} to be of type {spec}, instead got {actual}"
    for key in data:
        if key not in template:
            return prefix + f"Extra key: {key}"
    return None
