#!/usr/bin/env python3
"""Regenerate the generated blocks of docs/configuration.md from the pydantic model.

Blocks between ``<!-- BEGIN GENERATED: x -->`` and ``<!-- END GENERATED: x -->`` are replaced:
``config-reference`` (every field of DazConfig: default, constraints, meaning, DAZ_* variable) and
``backoff-schedule`` (the reconnect backoff's intervals and a draw with random seed 42 for attempts 1-12).
Meanings come from each field's docstring in src/daz/config/ (``use_attribute_docstrings``) or
its ``Field(description=...)``. Run with ``--check`` to fail when the page is stale (tests do).

Usage: python scripts/gen_config_docs.py [--check] [PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from daz.backoff import proportional_backoff, proportional_bounds
from daz.config import DazConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SCHEDULE_SEED = 42
UNDOCUMENTED = "—"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg) if not isinstance(arg, FieldInfo) else None
        if found is not None:
            return found
    return None


def _container(annotation: Any) -> str | None:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            kind = _container(arg)
            if kind:
                return kind
    if origin is list:
        return "list"
    if origin is dict:
        return "dict"
    return None


def _type_name(annotation: Any) -> str:
    return _plain_type(annotation).replace("|", "\\|")


def _plain_type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _plain_type(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_plain_type(a) for a in args)
    if origin is typing.Literal:
        return "str"
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_plain_type(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    factory = info.default_factory
    value = factory() if factory is not None else info.default  # type: ignore[call-arg]
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
        return "keys: " + ", ".join(f"`{k}`" for k in value)
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value, default=str)}`"


def _constraints(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"pattern `{pattern}`")
    for arg in typing.get_args(info.annotation):
        if typing.get_origin(arg) is typing.Annotated:
            for meta in typing.get_args(arg)[1:]:
                for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
                    value = getattr(meta, attr, None)
                    if value is None:
                        value = next((getattr(m, attr, None) for m in getattr(meta, "metadata", [])
                                      if getattr(m, attr, None) is not None), None)
                    if value is not None:
                        parts.append(f"{sign} {value}")
    if typing.get_origin(info.annotation) is typing.Literal:
        parts.append("one of " + ", ".join(f"`{a}`" for a in typing.get_args(info.annotation)))
    if isinstance(info.annotation, type) and issubclass(info.annotation, Enum):
        parts.append("one of " + ", ".join(f"`{m.value}`" for m in info.annotation))
    return ", ".join(dict.fromkeys(parts))


def _rows(model: type[BaseModel], path: list[str], env: list[str]) -> list[str]:
    rows: list[str] = []
    for name, info in model.model_fields.items():
        sub = _model_in(info.annotation)
        kind = _container(info.annotation)
        field_path, field_env = [*path, name], [*env, name.upper()]
        if sub is not None and kind == "list":
            rows.extend(_rows(sub, [*path, f"{name}[]"], [*field_env, "<i>"]))
            continue
        if sub is not None and kind == "dict":
            rows.append(_row(field_path, field_env, info))
            rows.extend(_rows(sub, [*path, f"{name}.<name>"], [*field_env, "<NAME>"]))
            continue
        if sub is not None:
            rows.extend(_rows(sub, field_path, field_env))
            continue
        rows.append(_row(field_path, field_env, info))
    return rows


def _row(path: list[str], env: list[str], info: FieldInfo) -> str:
    meaning = " ".join((info.description or UNDOCUMENTED).split()).replace("|", "\\|")
    variable = "DAZ_" + "__".join(env)
    return (f"| `{'.'.join(path)}` | {_type_name(info.annotation)} | {_default(info)} | "
            f"{_constraints(info)} | {meaning} | `{variable}` |")


def reference_block() -> str:
    header = [
        "| field | type | default | allowed | meaning | environment variable |",
        "|---|---|---|---|---|---|",
    ]
    return "\n".join(header + _rows(DazConfig, [], []))


def schedule_block() -> str:
    rng = random.Random(SCHEDULE_SEED)
    lines = [
        f"| attempt | b = 2·2^(k-1) s | interval [low, high] s | drawn with seed {SCHEDULE_SEED} (s) |",
        "|---|---|---|---|",
    ]
    for attempt in range(1, 13):
        low, high = proportional_bounds(attempt)
        base = 2 * 2 ** (attempt - 1)
        lines.append(f"| {attempt} | {base} | [{low:.2f}, {high:.2f}] | {proportional_backoff(attempt, rng):.3f} |")
    return "\n".join(lines)


BLOCKS = {"config-reference": reference_block, "backoff-schedule": schedule_block}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        if begin not in text or end not in text:
            raise SystemExit(f"{name}: markers {begin} / {end} missing from the page")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{make()}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    parser.add_argument("path", nargs="?", type=Path, default=DOC)
    args = parser.parse_args(argv)
    current = args.path.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            sys.stderr.write(f"{args.path} is stale: run python scripts/gen_config_docs.py\n")
            return 1
        return 0
    args.path.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
