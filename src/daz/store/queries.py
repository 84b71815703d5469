"""The retry store's SQL, one file per backend (``sql/<backend>/queries.sql``), read once per process.

A file is a sequence of named blocks: a ``-- name: <name>`` line, then the statement up to the next
header. Comment lines inside a block stay part of it (the database ignores them). A missing,
duplicate or unknown name is a packaging bug and fails at import, naming the file and the block.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from importlib import resources
from typing import Literal

from daz.errors import StoreError

QueryBackend = Literal["postgres", "sqlite"]
_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$")


def parse(text: str, source: str) -> dict[str, str]:
    """``{name: statement}`` from the text of a queries file."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header is not None:
            name = header.group(1)
            if name in blocks:
                raise StoreError(f"{source}: query '{name}' is defined twice")
            current = blocks[name] = []
        elif current is not None:
            current.append(line)
    statements = {name: "\n".join(lines).strip() for name, lines in blocks.items()}
    empty = [name for name, sql in statements.items() if not sql]
    if empty:
        raise StoreError(f"{source}: query '{empty[0]}' has no statement")
    return statements


@functools.cache
def _load(backend: QueryBackend) -> Mapping[str, str]:
    resource = resources.files("daz.store") / "sql" / backend / "queries.sql"
    return parse(resource.read_text(encoding="utf-8"), f"store/sql/{backend}/queries.sql")


def load(backend: QueryBackend, names: Collection[str]) -> Mapping[str, str]:
    """The statements of ``backend``'s file; exactly ``names`` must be defined (none missing or unused)."""
    statements = _load(backend)
    missing = sorted(set(names) - statements.keys())
    unused = sorted(statements.keys() - set(names))
    if missing or unused:
        raise StoreError(f"store/sql/{backend}/queries.sql: missing {missing}, unused {unused}")
    return statements
