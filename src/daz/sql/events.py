"""The failure events ``sql.query.failed`` / ``sql.exec.failed``: five fields every consumer
relies on (correlation_id, source, operation_type, error, timestamp) plus retryable, sqlstate,
attempt and idempotent (docs/events.md).

Published with ``bus.publish``, which only enqueues: the caller's error is raised without waiting for
any subscriber, and a slow or crashing subscriber cannot hold up the SQL path.
"""

from __future__ import annotations

from typing import Any

from daz.clock import Clock, rfc3339
from daz.errors import DazError
from daz.events.bus import EventBus
from daz.sql.operation import SqlOperation

QUERY_FAILED = "sql.query.failed"
EXEC_FAILED = "sql.exec.failed"
FAILURE_FIELDS = (
    "correlation_id", "source", "operation_type", "error", "timestamp",
    "retryable", "sqlstate", "attempt", "idempotent",
)


def failure_event(op: SqlOperation, error: DazError, attempt: int, clock: Clock) -> dict[str, Any]:
    return {
        "correlation_id": op.correlation_id,
        "source": op.source,
        "operation_type": op.operation_type,
        "error": error.message,
        "timestamp": rfc3339(clock.now()),
        "retryable": bool(error.retryable),
        "sqlstate": getattr(error, "sqlstate", None),
        "attempt": attempt,
        "idempotent": op.idempotent,
    }


def publish_failure(bus: EventBus, op: SqlOperation, error: DazError, attempt: int, clock: Clock) -> None:
    name = QUERY_FAILED if op.kind == "query" else EXEC_FAILED
    bus.publish(name, failure_event(op, error, attempt, clock), correlation_id=op.correlation_id,
                source=op.source)
