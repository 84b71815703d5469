"""``sql.query.request`` / ``sql.exec.request``: the SQL service's operations over the bus.

Request data: ``{"sql": "...$1...", "params": [...], "idempotency_key": "..."}`` (key: exec only).
The request's ``correlation_id`` and ``source`` are the operation's. Replies: ``{"rows": [...]}`` or
``{"rows_affected": n}``; a failure is raised to the requester as the same ``DazError`` the direct API
raises (after the failure event was published). The bus serves one request per responder at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from daz.errors import SqlError
from daz.events.bus import Event, EventBus, Subscription
from daz.sql.operation import DEFAULT_SOURCE, SqlOperation

QUERY_REQUEST = "sql.query.request"
EXEC_REQUEST = "sql.exec.request"


def _parse(event: Event, *, allow_key: bool) -> tuple[str, tuple[Any, ...], str | None]:
    data = event.data
    if not isinstance(data, Mapping) or not isinstance(data.get("sql"), str):
        raise SqlError(f"{event.name}: data must be an object with a 'sql' string", retryable=False,
                       correlation_id=event.correlation_id)
    params = data.get("params") or []
    if not isinstance(params, list | tuple):
        raise SqlError(f"{event.name}: 'params' must be a list", retryable=False,
                       correlation_id=event.correlation_id)
    key = data.get("idempotency_key") if allow_key else None
    if key is not None and not isinstance(key, str):
        raise SqlError(f"{event.name}: 'idempotency_key' must be a string", retryable=False,
                       correlation_id=event.correlation_id)
    return data["sql"], tuple(params), key


class OperationRunner(Protocol):
    target: str

    async def run_operation(self, op: SqlOperation, *, attempt: int = 1, from_queue: bool = False) -> Any: ...


def register(service: OperationRunner, bus: EventBus) -> list[Subscription]:
    """Answer both request names on ``bus`` through ``service``."""

    async def on_query(event: Event) -> dict[str, Any]:
        sql, params, _ = _parse(event, allow_key=False)
        op = SqlOperation("query", sql, params, event.source or DEFAULT_SOURCE,
                          event.correlation_id or "", None, service.target)
        return {"rows": await service.run_operation(op)}

    async def on_exec(event: Event) -> dict[str, Any]:
        sql, params, key = _parse(event, allow_key=True)
        op = SqlOperation("exec", sql, params, event.source or DEFAULT_SOURCE,
                          event.correlation_id or "", key, service.target)
        return {"rows_affected": await service.run_operation(op)}

    return [bus.respond(QUERY_REQUEST, on_query), bus.respond(EXEC_REQUEST, on_exec)]
