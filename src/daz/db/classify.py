"""Retryable or not: decided from the SQLSTATE class and the driver's exception type, never from text.

Message text changes with the server's version and locale, so matching it misclassifies; the decision
reads only structured facts: asyncpg's ``sqlstate`` attribute, the Python exception type for transport
failures, and sqlite3's numeric ``sqlite_errorcode``. The full table is in docs/sql.md. Every caller
(the retry store, the SQL service, the cluster coordinator, migrations) goes through this module, via
``daz.db.errors.translate``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import asyncpg

from daz.errors import DazError

# Exact codes that can succeed on a later attempt (the rest of their class cannot).
_RETRYABLE_CODES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "57014",  # query_canceled (statement_timeout)
    "53300",  # too_many_connections
    "55P03",  # lock_not_available (lock_timeout)
})
# Whole classes: 08 connection exception. Everything else defaults to not retryable.
_RETRYABLE_CLASSES = frozenset({"08"})

_SQLITE_PRIMARY_MASK = 0xFF
_SQLITE_RETRYABLE = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# The file cannot be reached or written right now (missing directory, I/O error, disk full): an
# outage that can clear, unlike SQLITE_ERROR (a bad statement, a missing table), which cannot.
_SQLITE_UNAVAILABLE = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL})


# What the drivers raise: anything else escaping a statement is the caller's own exception.
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, sqlite3.Error, OSError,
)


@dataclass(frozen=True, slots=True)
class Classification:
    retryable: bool
    sqlstate: str | None
    category: str  # bounded vocabulary, usable as a metric label


def classify_sqlstate(sqlstate: str) -> Classification:
    """Classify a PostgreSQL SQLSTATE (5 characters)."""
    code = sqlstate.upper()
    klass = code[:2]
    if code in _RETRYABLE_CODES or klass in _RETRYABLE_CLASSES:
        return Classification(True, code, _category(klass))
    return Classification(False, code, _category(klass))


def _category(klass: str) -> str:
    return {
        "08": "connection",
        "22": "data",
        "23": "integrity",
        "25": "transaction_state",
        "28": "authorization",
        "40": "transaction_rollback",
        "42": "syntax_or_access",
        "53": "insufficient_resources",
        "55": "object_state",
        "57": "operator_intervention",
        "58": "system",
        "XX": "internal",
    }.get(klass, "other")


def classify(exc: BaseException) -> Classification:
    """Classify a driver exception (asyncpg, sqlite3, OS-level) or a ``DazError``."""
    if isinstance(exc, DazError):
        return Classification(exc.retryable, getattr(exc, "sqlstate", None), "daz")
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str) and len(sqlstate) == 5:
            return classify_sqlstate(sqlstate)
        return Classification(False, None, "other")
    if isinstance(exc, asyncpg.InterfaceError):
        # Client-side misuse (wrong parameter type, bad configuration) is also a ValueError/TypeError
        # and cannot get better by itself; the rest ("connection is closed") is a lost connection.
        if isinstance(exc, ValueError | TypeError):
            return Classification(False, None, "client")
        return Classification(True, None, "connection")
    if isinstance(exc, asyncpg.InternalClientError):
        # The client's protocol state is broken (e.g. a rollback on a connection lost mid-query
        # finds "another operation in progress"); a fresh connection can succeed.
        return Classification(True, None, "connection")
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & _SQLITE_PRIMARY_MASK) in _SQLITE_RETRYABLE:
            return Classification(True, None, "sqlite_busy")
        if isinstance(code, int) and (code & _SQLITE_PRIMARY_MASK) in _SQLITE_UNAVAILABLE:
            return Classification(True, None, "sqlite_unavailable")
        if isinstance(code, int) and (code & _SQLITE_PRIMARY_MASK) == sqlite3.SQLITE_CONSTRAINT:
            return Classification(False, None, "integrity")
        return Classification(False, None, "sqlite")
    # Transport failures: refused/reset/aborted connections, unreachable hosts, connect timeouts.
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return Classification(True, None, "connection")
    return Classification(False, None, "other")


def is_connection_loss(exc: BaseException) -> bool:
    """Whether the connection that raised ``exc`` must be discarded (not just the statement)."""
    if isinstance(exc, asyncpg.PostgresError):
        code = getattr(exc, "sqlstate", None) or ""
        return code[:2] == "08" or code in {"57P01", "57P02", "57P03"}
    if isinstance(exc, asyncpg.InterfaceError):
        return not isinstance(exc, ValueError | TypeError)
    if isinstance(exc, asyncpg.InternalClientError):
        return True
    return isinstance(exc, ConnectionError | OSError) and not isinstance(exc, sqlite3.Error)
