"""Logging: JSON and console output, correlation ids, stdlib routing, and secrets never printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from daz.logging import (
    MASK,
    add_secret,
    bind_correlation_id,
    bound_context,
    clear_secrets,
    configure_logging,
    redact,
    reset_logging,
)

PASSWORD = "hunter2-Secret!"  # deliberately contains regex metacharacters
DSN_PASSWORD = "pgpass-77"


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    clear_secrets()
    yield
    reset_logging()
    clear_secrets()


def _json_lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def _emit_everything() -> None:
    log = structlog.get_logger("daz.test")
    log.info("room.login", password=PASSWORD, nested={"a": [1, {"pw": PASSWORD}]}, tup=(PASSWORD,))
    log.warning("sql.connect", dsn=f"postgresql://bot:{DSN_PASSWORD}@127.0.0.1:5432/daz")
    log.info(f"event name containing {PASSWORD}")  # noqa: G004 - a secret in the event text itself
    try:
        raise ValueError(f"login failed for password {PASSWORD}")
    except ValueError as exc:
        log.exception("room.login_failed", error=exc)
    logging.getLogger("socketio.client").error("library says %s", PASSWORD)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_secret_never_appears(fmt: str) -> None:
    out = io.StringIO()
    configure_logging("debug", fmt, secrets=[PASSWORD], stream=out)  # type: ignore[arg-type]
    _emit_everything()
    text = out.getvalue()
    assert PASSWORD not in text
    assert DSN_PASSWORD not in text
    assert text.count(MASK) >= 7
    assert "room.login_failed" in text
    assert "Traceback" in text  # the traceback is kept, only the secret is masked


def test_json_lines_have_event_level_logger_and_timestamp() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger("daz.rooms").info("room.ready", room="lobby", attempt=3)
    [line] = _json_lines(out)
    assert line["event"] == "room.ready"
    assert line["room"] == "lobby"
    assert line["attempt"] == 3
    assert line["level"] == "info"
    assert line["logger"] == "daz.rooms"
    assert str(line["timestamp"]).endswith("Z")


def test_correlation_id_is_bound_into_every_line() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger("daz.retry")
    with bind_correlation_id("corr-123"):
        log.info("retry.scheduled")
        logging.getLogger("aiohttp.client").warning("foreign line")
        with bound_context(room="lobby"):
            log.info("retry.succeeded")
    log.info("retry.idle")
    lines = _json_lines(out)
    assert [line.get("correlation_id") for line in lines] == ["corr-123", "corr-123", "corr-123", None]
    assert lines[2]["room"] == "lobby"
    assert "room" not in lines[3]


def test_explicit_correlation_id_wins() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    with bind_correlation_id("outer"):
        structlog.get_logger("daz.x").info("x.y", correlation_id="explicit")
    assert _json_lines(out)[0]["correlation_id"] == "explicit"


def test_levels_and_library_loggers() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger("daz.a").debug("a.hidden")
    structlog.get_logger("daz.a").info("a.shown")
    logging.getLogger("engineio.client").info("library chatter")  # below WARNING: dropped
    logging.getLogger("engineio.client").warning("library warning")
    events = [line["event"] for line in _json_lines(out)]
    assert events == ["a.shown", "library warning"]


def test_add_secret_at_runtime() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger("daz.a")
    log.info("a.before", token="tok-abcdef")
    add_secret("tok-abcdef")
    log.info("a.after", token="tok-abcdef")
    first, second = _json_lines(out)
    assert first["token"] == "tok-abcdef"
    assert second["token"] == MASK


def test_auto_format_is_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    structlog.get_logger("daz.a").info("a.b", k=1)
    assert _json_lines(out)[0]["event"] == "a.b"


def test_redact_walks_nested_values() -> None:
    add_secret("s3cret")
    value = {"k": ["x s3cret y", {"deep": ("s3cret",)}], "s3cret": 1, "n": 5, "e": RuntimeError("s3cret")}
    assert redact(value) == {
        "k": [f"x {MASK} y", {"deep": [MASK]}], MASK: 1, "n": 5, "e": f"RuntimeError: {MASK}"
    }


def test_unknown_log_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud", "json", stream=io.StringIO())


def test_library_loggers_that_configure_themselves_are_routed_through_ours() -> None:
    # python-engineio, given logger=False, sets its module logger to ERROR and adds a bare stderr
    # handler (unrendered, unredacted lines) whenever that logger's level is NOTSET.
    import engineio

    engine_logger = logging.getLogger("engineio.client")
    engine_logger.setLevel(logging.NOTSET)
    engineio.AsyncClient(logger=False)
    out = io.StringIO()
    configure_logging("info", "json", stream=out, secrets=["hunter2"])
    engineio.AsyncClient(logger=False)  # created after configuration: must not re-add its handler
    assert [h for h in engine_logger.handlers if type(h) is logging.StreamHandler] == []
    engine_logger.warning("engine trouble with hunter2")
    lines = _json_lines(out)
    assert [line["event"] for line in lines] == ["engine trouble with **********"]
