"""The one place daz opens a PostgreSQL connection (asyncpg), with the same settings for every caller."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg


async def connect(
    dsn: str,
    *,
    timeout: float,
    statement_timeout_seconds: float | None = None,
    server_settings: Mapping[str, str] | None = None,
) -> asyncpg.Connection:
    """A new connection; driver errors propagate (callers wrap this in ``daz.db.errors.translate``)."""
    settings = dict(server_settings or {})
    if statement_timeout_seconds is not None:
        settings["statement_timeout"] = str(int(statement_timeout_seconds * 1000))
    return await asyncpg.connect(dsn, timeout=timeout, server_settings=settings or None)
