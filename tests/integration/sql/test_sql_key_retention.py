"""Idempotency keys are kept for ``idempotency_key_retention_days`` and then pruned, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqltest_support import PluginFactory, apply_pg_schema, apply_sqlite_schema

TABLE_SQLITE = "CREATE TABLE IF NOT EXISTS notes (k TEXT UNIQUE);"
TABLE_PG = "CREATE TABLE IF NOT EXISTS notes (k text UNIQUE);"
INSERT = "INSERT INTO notes (k) VALUES ($1)"
KEYS = "SELECT idempotency_key FROM daz_idempotency_keys ORDER BY idempotency_key"
AGE_SQLITE = ("UPDATE daz_idempotency_keys SET applied_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-9 days') "
              "WHERE idempotency_key = $1")
AGE_PG = "UPDATE daz_idempotency_keys SET applied_at = now() - interval '9 days' WHERE idempotency_key = $1"


async def _check_pruning(make_plugin: PluginFactory, url: str, age_sql: str) -> None:
    h = await make_plugin(url, idempotency_key_retention_days=7)
    await h.plugin.exec(INSERT, "old", idempotency_key="k-old")
    await h.plugin.exec(INSERT, "new", idempotency_key="k-new")
    await h.plugin.exec(age_sql, "k-old")  # applied nine days ago
    assert await h.plugin.prune_idempotency_keys() == 1
    assert [r["idempotency_key"] for r in await h.plugin.query(KEYS)] == ["k-new"]
    # a key within the retention still makes a duplicate a no-op
    assert await h.plugin.exec(INSERT, "new", idempotency_key="k-new") == 0


async def test_old_keys_are_pruned_on_sqlite(make_plugin: PluginFactory, tmp_path: Path) -> None:
    path = tmp_path / "daz.db"
    apply_sqlite_schema(path, TABLE_SQLITE)
    await _check_pruning(make_plugin, f"sqlite:///{path}", AGE_SQLITE)


@pytest.mark.postgres
async def test_old_keys_are_pruned_on_postgres(make_plugin: PluginFactory, pg_dsn: str) -> None:
    await apply_pg_schema(pg_dsn, TABLE_PG)
    await _check_pruning(make_plugin, pg_dsn, AGE_PG)
