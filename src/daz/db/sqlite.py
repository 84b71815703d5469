"""The one place daz opens a SQLite file (stdlib ``sqlite3``), with the same settings for every caller."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
Synchronous = Literal["NORMAL", "FULL"]


def connect(
    path: Path | str,
    *,
    busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    synchronous: Synchronous = "NORMAL",
) -> sqlite3.Connection:
    """Autocommit (transactions are explicit ``BEGIN IMMEDIATE``), WAL, foreign keys on.

    ``synchronous=FULL`` for a file whose every commit must survive power loss (the spool);
    ``NORMAL`` (safe in WAL against a process crash) elsewhere. The connection may be used from
    another thread than the one that opened it, one thread at a time (the caller serializes).
    """
    conn = sqlite3.connect(str(path), timeout=busy_timeout_seconds, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn
