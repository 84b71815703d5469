"""Structured logging for daz: structlog over the stdlib, console or JSON, correlation ids, redaction.

Every line is an event: a stable dotted name (``room.state_changed``) plus key/value fields. The
stdlib root logger is routed through the same processors, so python-socketio, engineio and aiohttp
lines come out in our format (at WARNING unless asked otherwise) and pass the same redaction.

Redaction runs last, on the final event dict AND on the rendered line: every configured secret and
the password of any ``scheme://user:password@`` DSN become ``**********``, wherever they hide
(nested dicts, lists, exception text and tracebacks). Secrets shorter than
``MIN_SECRET_LENGTH`` are still redacted; the cost is that common short strings vanish from logs,
which is the right trade for a password.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "**********"
LogFormat = Literal["auto", "console", "json"]
LIBRARY_LOGGERS = ("socketio", "engineio", "aiohttp", "asyncpg", "asyncio")
MIN_SECRET_LENGTH = 1

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "daz_correlation_id", default=None
)
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None
_DSN_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)", re.IGNORECASE
)
_HANDLER_NAME = "daz.logging"


# correlation ids -------------------------------------------------------------------------------

@contextlib.contextmanager
def bind_correlation_id(correlation_id: str | None) -> Iterator[None]:
    """Every log line inside the block (this task and tasks it starts) carries ``correlation_id``."""
    token = _correlation_id.set(correlation_id)
    try:
        yield
    finally:
        _correlation_id.reset(token)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def _add_correlation_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    cid = _correlation_id.get()
    if cid is not None and event_dict.get("correlation_id") is None:
        event_dict["correlation_id"] = cid
    return event_dict


# redaction -------------------------------------------------------------------------------------

def add_secret(value: str | None) -> None:
    """Redact ``value`` from every log line from now on (empty values are ignored)."""
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    global _secret_pattern  # noqa: PLW0603 - one process-wide list, like the logging config itself
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first so a secret containing another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def clear_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _secret_pattern  # noqa: PLW0603 - see add_secret
    with _secrets_lock:
        _secrets.clear()
        _secret_pattern = None


def redact_text(text: str) -> str:
    """``text`` with every known secret and any DSN password replaced by the mask."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _DSN_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}{m.group('at')}", text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secrets masked in every string it contains (bounded depth)."""
    if _depth > 20:
        return "<nested too deep>"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {redact_text(str(k)): redact(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    # Unknown objects are rendered to text here so their repr cannot leak a secret later.
    return redact_text(repr(value))


def _redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return {redact_text(str(k)): redact(v) for k, v in event_dict.items()}


class _RedactingRenderer:
    """Renders, then masks the finished line too (a secret split across fields is still caught)."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        rendered = self._renderer(logger, name, event_dict)
        return redact_text(rendered if isinstance(rendered, str) else str(rendered))


# configuration ---------------------------------------------------------------------------------

def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    return number


def _wants_console(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt == "console":
        return True
    if fmt == "json":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# Module loggers that python-engineio/socketio configure themselves when given ``logger=False``.
_SELF_CONFIGURING_LOGGERS = ("engineio.client", "engineio.server", "socketio.client", "socketio.server")


def _tame_library_children(level: int) -> None:
    """python-engineio/socketio, given ``logger=False``, set their module logger to ERROR and attach
    a bare stderr handler whenever that logger's level is NOTSET: lines that bypass our renderer and
    the secret redaction. Give those loggers an explicit level (so the libraries leave them alone)
    and drop any such handler, so their records reach ours."""
    for name in _SELF_CONFIGURING_LOGGERS:
        logging.getLogger(name)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or "." not in name:
            continue
        if name.split(".", 1)[0] not in LIBRARY_LOGGERS:
            continue
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = True


def configure_logging(
    level: str | int = "info",
    fmt: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    *,
    library_level: str | int = "warning",
) -> None:
    """Route structlog and the stdlib root logger to ``stream`` (stderr) as console or JSON lines.

    ``fmt="auto"`` picks the console renderer on a terminal and JSON otherwise. Library loggers
    (socketio, engineio, aiohttp, ...) are held at ``library_level``. Safe to call again: the
    previous handler is replaced, secrets accumulate (see ``clear_secrets``).
    """
    out = stream if stream is not None else sys.stderr
    for secret in secrets:
        add_secret(secret)
    console = _wants_console(fmt, out)
    colors = console and bool(getattr(out, "isatty", None) and out.isatty())

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_correlation_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text here so redaction sees them in both renderers.
        structlog.processors.format_exc_info,
    ]
    renderer: Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_processor,
            _RedactingRenderer(renderer),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    number = _level_number(level)
    root.setLevel(number)
    lib_number = max(_level_number(library_level), number)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(lib_number)
    _tame_library_children(lib_number)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: module-level loggers pick up a later reconfiguration (CLI options, tests).
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo ``configure_logging`` (tests): remove our handler and restore structlog's defaults."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    structlog.reset_defaults()


def bound_context(**values: Any) -> contextlib.AbstractContextManager[None]:
    """Bind ``values`` into every log line inside the block (structlog contextvars)."""
    return structlog.contextvars.bound_contextvars(**values)


__all__ = [
    "MASK",
    "LogFormat",
    "add_secret",
    "bind_correlation_id",
    "bound_context",
    "clear_secrets",
    "configure_logging",
    "current_correlation_id",
    "redact",
    "redact_text",
    "reset_logging",
]
