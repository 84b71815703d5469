from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from daz.sql.operation import SqlOperation
from daz.sql.statements import bind_qmark, decode_params, encode_params, placeholder_count, to_qmark


def test_placeholders_become_qmarks_in_order() -> None:
    assert to_qmark("SELECT * FROM t WHERE a = $1 AND b = $2") == (
        "SELECT * FROM t WHERE a = ? AND b = ?", (0, 1)
    )


def test_reordered_and_repeated_placeholders_bind_the_right_values() -> None:
    text, args = bind_qmark("UPDATE t SET a = $2 WHERE id = $1 OR parent = $1", ["id7", "A"])
    assert text == "UPDATE t SET a = ? WHERE id = ? OR parent = ?"
    assert args == ("A", "id7", "id7")


def test_literals_identifiers_and_comments_are_untouched() -> None:
    sql = "SELECT '$1', \"col$2\", 'it''s $3' -- $4\n/* $5 */ FROM t WHERE x = $1"
    text, order = to_qmark(sql)
    assert order == (0,)
    assert text == "SELECT '$1', \"col$2\", 'it''s $3' -- $4\n/* $5 */ FROM t WHERE x = ?"
    assert placeholder_count(sql) == 1


def test_parameter_count_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="uses 2 parameter"):
        bind_qmark("SELECT $1, $2", [1])


def test_codec_round_trips_types_json_lacks() -> None:
    values = [None, True, 3, 2.5, "s", b"\x00\xff", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
              date(2026, 1, 2), timedelta(seconds=90), Decimal("1.10"), uuid.UUID(int=5), [1, b"x"]]
    assert decode_params(encode_params(values)) == (*values[:-1], [1, b"x"])


def test_unsupported_parameter_type_is_refused() -> None:
    with pytest.raises(TypeError, match="object"):
        encode_params([object()])


def test_operation_payload_round_trip_keeps_the_original_statement() -> None:
    op = SqlOperation("exec_many", "INSERT INTO t VALUES ($1, $2)", ((1, b"a"), (2, b"b")), "chatlog",
                      "corr-1", "key-1", "database")
    payload = op.to_payload(rerun=True)
    assert SqlOperation.from_payload(payload, correlation_id="corr-1") == op
    with pytest.raises(ValueError, match="not a sql_operation"):
        SqlOperation.from_payload({"kind": "drop"}, correlation_id="c")
