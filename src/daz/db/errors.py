"""One translation of driver errors into daz errors, over the SQLSTATE classification.

Every caller that talks to a database wraps the call in ``translate(...)``: a driver exception
(asyncpg, sqlite3, a socket error) is classified once by ``daz.db.classify`` and re-raised as a
``DazError`` chained ``from`` the original. Retryable (a lost connection, a restarting server, a busy
SQLite file) becomes the caller's "unavailable" error; anything else (a syntax error, a missing table,
a constraint) is a programming or data error and must not be retried as an outage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from daz.db.classify import DRIVER_ERRORS, Classification, classify
from daz.errors import DazError, StoreError, StoreUnavailable

# message, classification → the caller's own error type
ErrorFactory = Callable[[str, Classification], DazError]
E = TypeVar("E", bound=DazError)
# A DazError from below (e.g. the pool's acquire timeout) is re-said in the caller's vocabulary.
_TRANSLATED: tuple[type[Exception], ...] = (*DRIVER_ERRORS, DazError)


def store_error(message: str, verdict: Classification) -> DazError:
    """The retry store's and the coordinator's errors: ``StoreUnavailable`` when retrying can help."""
    if verdict.retryable:
        return StoreUnavailable(message)
    return StoreError(message)


def describe(exc: BaseException) -> str:
    """``Type: message`` of a driver error; the type alone when the driver gave no message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def translated(exc: BaseException, what: str, factory: Callable[[str, Classification], E]) -> E:
    """The ``DazError`` for ``exc`` raised during ``what`` (not raised: the caller chains it)."""
    verdict = classify(exc)
    state = "unavailable" if verdict.retryable else "failed"
    return factory(f"{what} {state} ({verdict.category}): {describe(exc)}", verdict)


@contextlib.contextmanager
def translate(
    what: str,
    factory: ErrorFactory = store_error,
    *,
    passthrough: type[DazError] | tuple[type[DazError], ...] = StoreError,
) -> Iterator[None]:
    """Re-raise driver errors (and foreign ``DazError``s, e.g. a pool timeout) as ``factory``'s errors.

    ``passthrough`` errors are already in the caller's vocabulary and leave unchanged.
    """
    try:
        yield
    except passthrough:
        raise
    except _TRANSLATED as exc:
        raise translated(exc, what, factory) from exc
