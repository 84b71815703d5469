"""The SQL service's write paths on a real PostgreSQL: idempotency under concurrency, batches, rollback."""

from __future__ import annotations

import asyncio

import pytest
from sqltest_support import PluginFactory, apply_pg_schema

from daz.errors import SqlError

pytestmark = pytest.mark.postgres

TABLE = "CREATE TABLE IF NOT EXISTS notes (k text, v integer, b bytea);"
INSERT = "INSERT INTO notes (k, v) VALUES ($1, $2)"
COUNT = "SELECT count(*) AS n FROM notes WHERE k = $1"


async def test_concurrent_duplicates_of_an_idempotent_exec_apply_once(
    pg_dsn: str, make_plugin: PluginFactory
) -> None:
    await apply_pg_schema(pg_dsn, TABLE)
    h = await make_plugin(pg_dsn, pool={"min_size": 4, "max_size": 8})
    results = await asyncio.gather(
        *(h.plugin.exec(INSERT, "dup", 1, idempotency_key="same-key") for _ in range(8))
    )
    assert sorted(results) == [0] * 7 + [1]  # the key's unique index serialises the duplicates
    assert await h.plugin.query_one(COUNT, "dup") == {"n": 1}
    row = await h.plugin.query_one(
        "SELECT correlation_id, source FROM daz_idempotency_keys WHERE idempotency_key = $1", "same-key")
    assert row is not None
    assert row["source"] == "unknown"


async def test_exec_many_with_a_key_is_one_unit(pg_dsn: str, make_plugin: PluginFactory) -> None:
    await apply_pg_schema(pg_dsn, TABLE)
    h = await make_plugin(pg_dsn)
    rows = [("m", i) for i in range(5)]
    assert await h.plugin.exec_many(INSERT, rows, idempotency_key="batch-1") == 5
    assert await h.plugin.exec_many(INSERT, rows, idempotency_key="batch-1") == 0
    assert await h.plugin.query_one(COUNT, "m") == {"n": 5}
    # a failing row rolls back the whole batch and its key, so a corrected retry can still apply
    with pytest.raises(SqlError) as info:
        await h.plugin.exec_many("INSERT INTO notes (k, v) VALUES ($1, 10 / $2)", [("bad", 1), ("bad", 0)],
                                 idempotency_key="batch-2")
    assert (info.value.sqlstate, info.value.retryable) == ("22012", False)  # division_by_zero
    assert await h.plugin.query_one(COUNT, "bad") == {"n": 0}
    assert await h.plugin.exec_many(INSERT, [("bad", 1)], idempotency_key="batch-2") == 1


async def test_transaction_rolls_back_on_a_caller_exception(pg_dsn: str, make_plugin: PluginFactory) -> None:
    await apply_pg_schema(pg_dsn, TABLE)
    h = await make_plugin(pg_dsn)

    async def failing() -> None:
        async with h.plugin.transaction(source="t") as tx:
            await tx.exec(INSERT, "tx", 1)
            assert await tx.query_one(COUNT, "tx") == {"n": 1}
            raise LookupError("caller")

    with pytest.raises(LookupError):
        await failing()
    assert await h.plugin.query_one(COUNT, "tx") == {"n": 0}
    assert await h.plugin.exec("UPDATE notes SET v = $1 WHERE k = $2", 2, "none") == 0


async def test_sql_file_statement(pg_dsn: str, make_plugin: PluginFactory) -> None:
    from daz.sql.statements import load_sql

    h = await make_plugin(pg_dsn)
    statement = load_sql("daz.store", "sql/postgres/0002_idempotency_keys.sql")
    await h.plugin.exec(statement)  # idempotent DDL shipped as a .sql file
    assert await h.plugin.query_one("SELECT count(*) AS n FROM daz_idempotency_keys") == {"n": 0}
