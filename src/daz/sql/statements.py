"""Statement text and parameters: one placeholder style for both backends, and a JSON codec.

Statements are written with PostgreSQL's ``$1, $2`` placeholders. SQLite wants ``?`` in order, so
``to_qmark`` rewrites the text once (cached) and returns which parameter each ``?`` takes, so that
``$2 … $1 … $2`` still works. Literals, quoted identifiers and comments are left untouched.

Parameters of a queued retry travel as JSON in the queue row; ``encode_params``/``decode_params``
keep the types asyncpg needs (bytes, datetimes, decimals, UUIDs) across that trip.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any, LiteralString


@functools.lru_cache(maxsize=1024)
def to_qmark(sql: str) -> tuple[str, tuple[int, ...]]:
    """``$n`` placeholders → ``?``; returns the new text and the 0-based parameter index of each ``?``."""
    out: list[str] = []
    order: list[int] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote escapes itself
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif ch == "$" and i + 1 < n and sql[i + 1].isdigit():
            end = i + 1
            while end < n and sql[end].isdigit():
                end += 1
            index = int(sql[i + 1:end]) - 1
            if index < 0:
                raise ValueError("placeholders start at $1")
            order.append(index)
            out.append("?")
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out), tuple(order)


def placeholder_count(sql: str) -> int:
    """The highest ``$n`` used (how many parameters the statement needs)."""
    _, order = to_qmark(sql)
    return max(order, default=-1) + 1


def bind_qmark(sql: str, params: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """Rewrite for SQLite and reorder ``params`` to match; a count mismatch is a clear ``ValueError``."""
    text, order = to_qmark(sql)
    needed = max(order, default=-1) + 1
    if needed != len(params):
        raise ValueError(f"statement uses {needed} parameter(s) but {len(params)} were given")
    return text, tuple(params[k] for k in order)


def load_sql(package: str, name: str) -> LiteralString:
    """Statement text from a ``.sql`` file shipped inside ``package``.

    Files in the package are as trusted as string constants in code, hence the cast: what must never
    reach a statement is runtime data, and that only ever travels as parameters.
    """
    text: LiteralString = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return text


# parameter codec ---------------------------------------------------------------------------------

_TAG = "$t"


def encode_param(value: Any) -> Any:
    """A JSON-safe form of one parameter; tagged objects for the types JSON lacks."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {_TAG: "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {_TAG: "timedelta", "v": value.total_seconds()}
    if isinstance(value, Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, list | tuple):
        return {_TAG: "list", "v": [encode_param(v) for v in value]}
    raise TypeError(f"cannot queue a SQL parameter of type {type(value).__name__}")


def decode_param(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    tag, raw = value.get(_TAG), value.get("v")
    decoders: dict[str, Any] = {
        "bytes": base64.b64decode,
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "time": time.fromisoformat,
        "timedelta": lambda v: timedelta(seconds=v),
        "decimal": Decimal,
        "uuid": uuid.UUID,
        "list": lambda v: [decode_param(x) for x in v],
    }
    if tag not in decoders:
        raise ValueError(f"unknown parameter tag {tag!r} in a queued SQL operation")
    return decoders[tag](raw)


def encode_params(params: Sequence[Any]) -> list[Any]:
    return [encode_param(p) for p in params]


def decode_params(params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(decode_param(p) for p in params)
