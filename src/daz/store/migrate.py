"""Versioned schema migrations: ``sql/<backend>/NNNN_name.sql`` applied in order, once each.

Applied versions are recorded in ``daz_schema_version``. PostgreSQL migrations run in one
transaction under an advisory lock keyed by the current schema, so instances starting together
do not race; SQLite ones under ``BEGIN IMMEDIATE`` (the database's single writer lock).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

import asyncpg
import structlog

from daz.db.errors import translate
from daz.db.postgres import connect
from daz.db.sqlite import DEFAULT_BUSY_TIMEOUT_SECONDS, SqliteDatabase
from daz.errors import StoreError

log = structlog.get_logger("daz.store")

Backend = Literal["postgres", "sqlite"]
_VERSION_TABLE_PG = """
CREATE TABLE IF NOT EXISTS daz_schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
_VERSION_TABLE_SQLITE = """
CREATE TABLE IF NOT EXISTS daz_schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""
SQLITE_BUSY_TIMEOUT_SECONDS = DEFAULT_BUSY_TIMEOUT_SECONDS
PG_CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class MigrationState:
    version: int
    name: str
    applied_at: datetime | str | None


def parse_url(url: str) -> tuple[Backend, str]:
    """``postgresql://…`` → ("postgres", dsn); ``sqlite:///path`` → ("sqlite", path)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres", url
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url.removeprefix("sqlite://")
        return "sqlite", path or "daz.db"
    raise StoreError(f"unsupported database URL scheme in '{url.split('://', 1)[0]}://…'; "
                     "use sqlite:///path or postgresql://…")


def available(backend: Backend) -> list[Migration]:
    """Every migration shipped for ``backend``, in version order."""
    folder = resources.files("daz.store") / "sql" / backend
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        stem = entry.name.removesuffix(".sql")
        number, _, name = stem.partition("_")
        if not number.isdigit():
            continue
        found.append(Migration(int(number), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration numbers for {backend}: {versions}")
    return found


async def migrate(url: str) -> list[int]:
    """Apply every pending migration; returns the versions applied now."""
    backend, target = parse_url(url)
    if backend == "postgres":
        return await _migrate_pg(target)
    return await _migrate_sqlite(Path(target))


async def status(url: str) -> list[MigrationState]:
    """Every shipped migration with its applied time (``None`` when pending)."""
    backend, target = parse_url(url)
    if backend == "postgres":
        applied = await _applied_pg(target)
    else:
        applied = await _applied_sqlite(Path(target))
    return [MigrationState(m.version, m.name, applied.get(m.version)) for m in available(backend)]


# PostgreSQL -------------------------------------------------------------------------------------

async def _connect_pg(dsn: str) -> asyncpg.Connection:
    with translate("PostgreSQL connect (migrations)"):
        return await connect(dsn, timeout=PG_CONNECT_TIMEOUT_SECONDS)


async def _migrate_pg(dsn: str) -> list[int]:
    conn = await _connect_pg(dsn)
    applied_now: list[int] = []
    try:
        with translate("PostgreSQL migration"):
            await _apply_pg(conn, applied_now)
    finally:
        await conn.close()
    if applied_now:
        log.info("store.migrated", backend="postgres", versions=applied_now)
    return applied_now


async def _apply_pg(conn: asyncpg.Connection, applied_now: list[int]) -> None:
    """Every pending migration in one transaction, under a lock keyed by the current schema."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('daz_migrate:' || current_schema()))")
        await conn.execute(_VERSION_TABLE_PG)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM daz_schema_version")}
        for mig in available("postgres"):
            if mig.version in done:
                continue
            await conn.execute(mig.sql)
            await conn.execute(
                "INSERT INTO daz_schema_version (version, name) VALUES ($1, $2)", mig.version, mig.name
            )
            applied_now.append(mig.version)


async def _applied_pg(dsn: str) -> dict[int, datetime | str | None]:
    conn = await _connect_pg(dsn)
    try:
        with translate("PostgreSQL migration status"):
            exists = await conn.fetchval("SELECT to_regclass('daz_schema_version') IS NOT NULL")
            if not exists:
                return {}
            rows = await conn.fetch("SELECT version, applied_at FROM daz_schema_version")
        return {r["version"]: r["applied_at"] for r in rows}
    finally:
        await conn.close()


# SQLite -----------------------------------------------------------------------------------------

def split_statements(script: str) -> list[str]:
    """Split a script into complete statements (``sqlite3.complete_statement`` knows trigger bodies)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip().strip(";").strip():
                statements.append(buffer)
            buffer = ""
    if buffer.strip():
        statements.append(buffer)
    return statements


async def _migrate_sqlite(path: Path) -> list[int]:
    db = SqliteDatabase(path, busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_SECONDS, thread_name="daz-migrate")
    try:
        with translate(f"SQLite {path} migration"):
            applied_now = await db.run(_apply_sqlite)
    finally:
        await db.close()
    if applied_now:
        log.info("store.migrated", backend="sqlite", path=str(path), versions=applied_now)
    return applied_now


def _apply_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Every pending migration under ``BEGIN IMMEDIATE`` (SQLite's single writer lock)."""
    applied_now: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSION_TABLE_SQLITE)
        done = {row[0] for row in conn.execute("SELECT version FROM daz_schema_version")}
        for mig in available("sqlite"):
            if mig.version in done:
                continue
            for statement in split_statements(mig.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO daz_schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (mig.version, mig.name, datetime.now(UTC).isoformat()),
            )
            applied_now.append(mig.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied_now


async def _applied_sqlite(path: Path) -> dict[int, datetime | str | None]:
    if not path.exists():  # noqa: ASYNC240 - one stat, before anything is opened
        return {}
    db = SqliteDatabase(path, busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_SECONDS, thread_name="daz-migrate")
    try:
        with translate(f"SQLite {path} migration status"):
            return await db.run(_read_applied_sqlite)
    finally:
        await db.close()


def _read_applied_sqlite(conn: sqlite3.Connection) -> dict[int, datetime | str | None]:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'daz_schema_version'"
    ).fetchone()
    if row is None:
        return {}
    return dict(conn.execute("SELECT version, applied_at FROM daz_schema_version"))
