"""Classification from SQLSTATE and exception type only (the real-server proofs are in integration)."""

from __future__ import annotations

import asyncpg
import pytest

from daz.db.classify import classify, classify_sqlstate, is_connection_loss
from daz.errors import CircuitOpen, SqlError

RETRYABLE = ["08000", "08001", "08003", "08006", "08P01", "40001", "40P01", "57P01", "57P02", "57P03",
             "53300", "55P03", "57014"]
NOT_RETRYABLE = ["23505", "23503", "23502", "42601", "42P01", "42501", "22P02", "22012", "40002",
                 "XX000", "0A000", "55006", "53100"]


@pytest.mark.parametrize("code", RETRYABLE)
def test_retryable_sqlstates(code: str) -> None:
    verdict = classify_sqlstate(code)
    assert verdict.retryable is True
    assert verdict.sqlstate == code


@pytest.mark.parametrize("code", NOT_RETRYABLE)
def test_not_retryable_sqlstates(code: str) -> None:
    assert classify_sqlstate(code).retryable is False


def test_message_text_is_never_consulted() -> None:
    # A "connection" word in a syntax error's message must not make it retryable.
    exc = asyncpg.exceptions.PostgresSyntaxError("connection timeout near 'SELEC'")
    assert classify(exc).retryable is False
    assert classify(exc).sqlstate == "42601"
    refused = ConnectionRefusedError("syntax error")
    assert classify(refused).retryable is True


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (OSError(113, "no route"), True),
        (TimeoutError(), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), True),
        (asyncpg.exceptions.InterfaceError("connection is closed"), True),
        (asyncpg.exceptions.SerializationError("x"), True),
        (asyncpg.exceptions.DeadlockDetectedError("x"), True),
        (asyncpg.exceptions.QueryCanceledError("x"), True),
        (asyncpg.exceptions.AdminShutdownError("x"), True),
        (asyncpg.InternalClientError("cannot switch to state 15; another operation is in progress"), True),
        (asyncpg.exceptions.UniqueViolationError("x"), False),
        (asyncpg.exceptions.DataError("x"), False),
        (asyncpg.exceptions.UndefinedTableError("x"), False),
        (ValueError("bad"), False),
    ],
)
def test_driver_exception_types(exc: BaseException, retryable: bool) -> None:
    assert classify(exc).retryable is retryable


def test_client_side_data_error_is_not_retryable() -> None:
    # asyncpg's client-side DataError is an InterfaceError AND a ValueError: a caller bug
    client_error = asyncpg.exceptions._base.DataError("invalid input for query argument $1")
    assert isinstance(client_error, asyncpg.InterfaceError)
    assert classify(client_error).retryable is False


def test_daz_errors_keep_their_own_verdict() -> None:
    assert classify(CircuitOpen("database", 3.0)).retryable is True
    verdict = classify(SqlError("x", sqlstate="23505", retryable=False))
    assert (verdict.retryable, verdict.sqlstate) == (False, "23505")


def test_connection_loss_discards_the_connection_only_for_connection_failures() -> None:
    assert is_connection_loss(asyncpg.exceptions.AdminShutdownError("x"))
    assert is_connection_loss(ConnectionResetError())
    assert is_connection_loss(asyncpg.exceptions.InterfaceError("connection is closed"))
    assert is_connection_loss(asyncpg.InternalClientError("another operation is in progress"))
    assert not is_connection_loss(asyncpg.exceptions.SerializationError("x"))
    assert not is_connection_loss(asyncpg.exceptions.QueryCanceledError("x"))
