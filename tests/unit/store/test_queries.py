"""The named-block loader behind store/sql/<backend>/queries.sql."""

from __future__ import annotations

import pytest

from daz.errors import StoreError
from daz.store import queries

TEXT = """-- a file comment, not part of any block
-- name: first
SELECT 1

-- name: second
-- a comment inside the block stays with it
UPDATE t SET v = 2
WHERE id = $1
"""


def test_blocks_are_split_on_name_headers() -> None:
    parsed = queries.parse(TEXT, "test.sql")
    assert parsed == {
        "first": "SELECT 1",
        "second": "-- a comment inside the block stays with it\nUPDATE t SET v = 2\nWHERE id = $1",
    }


def test_a_name_defined_twice_is_refused() -> None:
    with pytest.raises(StoreError, match="'first' is defined twice"):
        queries.parse(TEXT + "\n-- name: first\nSELECT 2\n", "test.sql")


def test_an_empty_block_is_refused() -> None:
    with pytest.raises(StoreError, match="'empty' has no statement"):
        queries.parse("-- name: empty\n\n-- name: full\nSELECT 1\n", "test.sql")


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_a_missing_or_unused_block_is_refused(backend: queries.QueryBackend) -> None:
    # Each store loads its file with its exact list of names at import; the list must match the file.
    from daz.store import postgres, sqlite

    used = (postgres if backend == "postgres" else sqlite)._SQL
    names = sorted(used)
    assert queries.load(backend, names) == used
    with pytest.raises(StoreError, match=r"missing \['no_such_query'\]"):
        queries.load(backend, [*names, "no_such_query"])
    with pytest.raises(StoreError, match=rf"unused \['{names[0]}'\]"):
        queries.load(backend, names[1:])
