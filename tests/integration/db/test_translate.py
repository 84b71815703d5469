"""One error translation for every database caller, against real SQLite files and a real PostgreSQL.

A bad statement is a programming error (``StoreError``, not retryable); a busy or unreachable database
is an outage (``StoreUnavailable``, retryable). Both are chained to the driver's exception.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from daz.db.errors import translate
from daz.db.sqlite import connect
from daz.errors import SqlError, StaleFence, StoreError, StoreUnavailable
from daz.store import open_store
from daz.store import sqlite as sqlite_store
from daz.store.sqlite import SqliteStore


async def test_sqlite_syntax_error_through_the_store_is_a_programming_error(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'q.db'}")
    assert isinstance(store, SqliteStore)
    try:
        with pytest.raises(StoreError) as caught:
            await store._run(sqlite_store._fetch, "SELEC id FROM daz_retry_queue", ())
        assert not isinstance(caught.value, StoreUnavailable), "a bad statement is not an outage"
        assert caught.value.retryable is False
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert "syntax error" in caught.value.message
        # the store is still usable: nothing was mistaken for a lost connection
        await store.ping()
    finally:
        await store.close()


def test_sqlite_missing_table_is_a_programming_error(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.db")
    try:
        with pytest.raises(StoreError) as caught, translate("SQLite read"):
            conn.execute("SELECT * FROM no_such_table")
        assert not isinstance(caught.value, StoreUnavailable)
    finally:
        conn.close()


def test_sqlite_busy_file_is_an_outage(tmp_path: Path) -> None:
    holder = connect(tmp_path / "x.db")
    other = connect(tmp_path / "x.db", busy_timeout_seconds=0.0)
    try:
        holder.execute("CREATE TABLE t (v INTEGER)")
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as caught, translate("SQLite write"):
            other.execute("BEGIN IMMEDIATE")
        assert caught.value.retryable is True
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        other.close()


def test_sqlite_unopenable_file_is_an_outage(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable), translate("SQLite open"):
        connect(tmp_path / "missing-dir" / "x.db")


def test_errors_already_in_the_store_vocabulary_pass_unchanged() -> None:
    fence = StaleFence(1, 2)
    with pytest.raises(StaleFence) as caught, translate("PostgreSQL complete"):
        raise fence
    assert caught.value is fence


def test_a_retryable_error_from_below_becomes_unavailable() -> None:
    # e.g. the pool's acquire timeout under the store: still an outage in the store's words
    with pytest.raises(StoreUnavailable) as caught, translate("PostgreSQL claim"):
        raise SqlError("no database connection free within 5.0s", retryable=True)
    assert isinstance(caught.value.__cause__, SqlError)


@pytest.mark.postgres
async def test_postgres_syntax_error_and_lost_connection(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(StoreError) as caught, translate("PostgreSQL read"):
            await conn.fetch("SELEC 1")
        assert not isinstance(caught.value, StoreUnavailable)
        assert "syntax_or_access" in caught.value.message
        await conn.close()
        with pytest.raises(StoreUnavailable), translate("PostgreSQL read"):
            await conn.fetch("SELECT 1")  # InterfaceError: the connection is closed
    finally:
        if not conn.is_closed():
            await conn.close()


@pytest.mark.postgres
async def test_postgres_client_side_bind_error_is_not_an_outage(pg_dsn: str) -> None:
    # An asyncpg InterfaceError that is also a ValueError/TypeError is the caller's bug: the store
    # used to call every InterfaceError "unavailable".
    conn = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(StoreError) as caught, translate("PostgreSQL write"):
            await conn.fetch("SELECT $1::int", "not a number")
        assert not isinstance(caught.value, StoreUnavailable)
    finally:
        await conn.close()
