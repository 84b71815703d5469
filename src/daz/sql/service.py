"""The SQL service: the only way plugins reach the database.

Every call goes through the ``database`` circuit breaker, translates driver errors into ``SqlError``
(retryable or not from ``classify``), publishes ``sql.query.failed`` / ``sql.exec.failed`` without
awaiting anyone, and hands failed writes to the retry queue as THE ORIGINAL OPERATION:

- idempotent exec (has ``idempotency_key``) + retryable failure (or breaker open) → a ``sql_operation``
  item that re-runs it; the caller gets ``SqlRetryScheduled``. The key is recorded in
  ``daz_idempotency_keys`` in the exec's own transaction, so any number of re-runs applies once.
- any other failed write → a ``sql_operation`` item marked ``rerun: false`` that the handler refuses,
  so it lands in the dead-letter queue with its payload for an operator, and is never re-run blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, timedelta
from typing import Any, LiteralString, Protocol

import structlog

from daz.aio import sleep_or_stop
from daz.clock import Clock
from daz.config import DatabaseConfig
from daz.db.classify import DRIVER_ERRORS, Classification
from daz.db.errors import translated
from daz.db.postgres import PgDatabase
from daz.errors import CircuitOpen, DazError, SqlError, SqlRetryScheduled
from daz.events.bus import EventBus, Subscription
from daz.metrics import DazMetrics
from daz.sql import handlers
from daz.sql.backends import Backend, Isolation, PostgresBackend, Row, Session, open_backend
from daz.sql.events import publish_failure
from daz.sql.operation import DEFAULT_SOURCE, Kind, SqlOperation
from daz.store.base import NewItem, QueueItem

log = structlog.get_logger("daz.sql")

RETRY_OPERATION = "sql_operation"
# ValueError/TypeError: parameters that do not bind (count, type) — the caller's bug, not retryable
_EXEC_ERRORS: tuple[type[Exception], ...] = (*DRIVER_ERRORS, ValueError, TypeError)
DATABASE_BREAKER = "database"

_PING: LiteralString = "SELECT 1 AS ok"
_PRUNE_KEYS: LiteralString = "DELETE FROM daz_idempotency_keys WHERE applied_at < $1"
_CLAIM_KEY: LiteralString = (
    "INSERT INTO daz_idempotency_keys (idempotency_key, correlation_id, source) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING"
)


class Breakers(Protocol):
    def get(self, name: str) -> Any: ...


class RetryScheduler(Protocol):
    """The part of ``daz.retry.RetryQueue`` the SQL service uses."""

    def register(self, operation_type: str, handler: Callable[[QueueItem], Awaitable[None]]) -> None: ...
    async def schedule(self, item: NewItem) -> Any: ...


class Transaction:
    """Statements inside ``SqlService.transaction()``: one connection, committed together."""

    def __init__(self, service: SqlService, session: Session, source: str, correlation_id: str) -> None:
        self._service = service
        self._session = session
        self._source = source
        self._correlation_id = correlation_id

    async def query(self, sql: LiteralString, *params: Any) -> list[Row]:
        op = self._op("query", sql, params)
        rows: list[Row] = await self._service._in_tx(op, self._session.fetch(sql, params))
        return rows

    async def query_one(self, sql: LiteralString, *params: Any) -> Row | None:
        rows = await self.query(sql, *params)
        return rows[0] if rows else None

    async def exec(self, sql: LiteralString, *params: Any) -> int:
        op = self._op("exec", sql, params)
        count: int = await self._service._in_tx(op, self._session.execute(sql, params))
        return count

    def _op(self, kind: Kind, sql: str, params: tuple[Any, ...]) -> SqlOperation:
        return SqlOperation(kind, sql, params, self._source, self._correlation_id)


class SqlService:
    """Direct API (``query``, ``query_one``, ``exec``, ``exec_many``, ``transaction``); a ``Service``."""

    name = "sql"

    def __init__(  # noqa: PLR0917 - positional order is the documented contract (§6)
        self,
        db_url: str,
        bus: EventBus,
        metrics: DazMetrics,
        clock: Clock,
        breakers: Breakers | None,
        retry_queue: RetryScheduler | None,
        config: DatabaseConfig,
        *,
        rng: random.Random | None = None,
        target: str = DATABASE_BREAKER,
        database: PgDatabase | None = None,
    ) -> None:
        self.bus = bus
        self.metrics = metrics
        self.clock = clock
        self.config = config
        self.target = target
        self._breakers = breakers
        self._queue = retry_queue
        self._subscriptions: list[Subscription] = []
        # ``database``: the process's shared PostgreSQL pool (app.py); without it the plugin opens its own.
        self.backend: Backend = open_backend(db_url, config, metrics=metrics, clock=clock, rng=rng,
                                             database=database)
        if retry_queue is not None:
            retry_queue.register(RETRY_OPERATION, self.handle_retry)

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the backend (warm the pool); fails only when ``require_database`` is set."""
        await self.backend.start(require=self.config.require_database)
        if not self._subscriptions:
            self._subscriptions = handlers.register(self, self.bus)

    async def run(self, stopping: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._prune_keys_periodically(stopping), name="sql.prune_keys")
            if isinstance(self.backend, PostgresBackend) and self.backend.owns_db:
                await self.backend.pool.run(stopping)  # a shared pool is maintained by its owner
            else:
                await stopping.wait()

    async def prune_idempotency_keys(self) -> int:
        """Delete keys of execs applied longer ago than ``idempotency_key_retention_days``."""
        cutoff = self.clock.now() - timedelta(days=self.config.idempotency_key_retention_days)
        # SQLite stores applied_at as ISO-8601 text with a 'Z' (see 0002_idempotency_keys.sql).
        param: Any = cutoff if isinstance(self.backend, PostgresBackend) else (
            cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{cutoff.microsecond // 1000:03d}Z")
        op = SqlOperation(kind="exec", sql=_PRUNE_KEYS, params=(param,), source="sql.retention",
                          correlation_id=uuid.uuid4().hex, target=self.target)
        removed = int(await self._execute(op))
        if removed:
            log.info("sql.idempotency_keys_pruned", removed=removed)
        return removed

    async def _prune_keys_periodically(self, stopping: asyncio.Event) -> None:
        # Housekeeping only: it bypasses the retry queue, and a failure just waits for the next round.
        while not await sleep_or_stop(self.clock, self.config.idempotency_prune_interval_seconds, stopping):
            try:
                await self.prune_idempotency_keys()
            except DazError as exc:
                log.warning("sql.idempotency_prune_failed", error=type(exc).__name__)

    async def close(self) -> None:
        for sub in self._subscriptions:
            self.bus.unsubscribe(sub)
        self._subscriptions = []
        await self.backend.close()

    def pool_snapshot(self) -> dict[str, Any] | None:
        """Pool figures for health checks and the status page (None on SQLite: no pool)."""
        if isinstance(self.backend, PostgresBackend):
            return self.backend.pool.snapshot()
        return None

    async def ping(self) -> float:
        """Round-trip ``SELECT 1`` through the normal path (breaker, events); returns seconds."""
        start = self.clock.monotonic()
        await self.query(_PING, source="health")
        return self.clock.monotonic() - start

    # direct API ------------------------------------------------------------------------------
    async def query(self, sql: LiteralString, *params: Any, source: str | None = None,
                    correlation_id: str | None = None) -> list[Row]:
        op = self._op("query", sql, params, source=source, correlation_id=correlation_id, key=None)
        rows: list[Row] = await self.run_operation(op)
        return rows

    async def query_one(self, sql: LiteralString, *params: Any, source: str | None = None,
                        correlation_id: str | None = None) -> Row | None:
        rows = await self.query(sql, *params, source=source, correlation_id=correlation_id)
        return rows[0] if rows else None

    async def exec(self, sql: LiteralString, *params: Any, source: str | None = None,
                   idempotency_key: str | None = None, correlation_id: str | None = None) -> int:
        """Rows affected; 0 when ``idempotency_key`` was already applied (a no-op)."""
        op = self._op("exec", sql, params, source=source, correlation_id=correlation_id,
                      key=idempotency_key)
        count: int = await self.run_operation(op)
        return count

    async def exec_many(self, sql: LiteralString, rows: Sequence[Sequence[Any]], *, source: str | None = None,
                        idempotency_key: str | None = None, correlation_id: str | None = None) -> int:
        """All rows in one transaction; with a key, the whole batch applies once."""
        op = self._op("exec_many", sql, tuple(tuple(r) for r in rows), source=source,
                      correlation_id=correlation_id, key=idempotency_key)
        count: int = await self.run_operation(op)
        return count

    @contextlib.asynccontextmanager
    async def transaction(self, *, source: str | None = None, correlation_id: str | None = None,
                          isolation: Isolation | None = None) -> AsyncIterator[Transaction]:
        """Statements in the block commit together; an exception rolls all of them back."""
        src = source or DEFAULT_SOURCE
        corr = correlation_id or uuid.uuid4().hex
        breaker = self._breaker()
        guard: contextlib.AbstractAsyncContextManager[Any] = (
            breaker if breaker is not None else contextlib.nullcontext()
        )
        caller_error: Exception | None = None
        async with guard:  # re-entrant: under the retry gate's permit it admits nothing new
            try:
                async with self.backend.session() as session, session.transaction(isolation):
                    yield Transaction(self, session, src, corr)
            except DRIVER_ERRORS as exc:  # BEGIN/COMMIT failed (e.g. serialization failure at commit)
                op = SqlOperation("exec", "COMMIT", (), src, corr, None, self.target)
                error = self._translate(exc, op)
                publish_failure(self.bus, op, error, 1, self.clock)
                raise error from exc
            except DazError:  # a statement's failure: already translated and published
                raise
            except Exception as exc:  # noqa: BLE001 - the caller's own exception, re-raised below
                caller_error = exc  # rolled back; not the database's fault, so not the breaker's
        if caller_error is not None:
            raise caller_error

    async def _in_tx(self, op: SqlOperation, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except DRIVER_ERRORS as exc:
            error = self._translate(exc, op)
            publish_failure(self.bus, op, error, 1, self.clock)
            raise error from exc

    # the operation path ----------------------------------------------------------------------
    def _op(self, kind: Kind, sql: str, params: tuple[Any, ...], *, source: str | None,
            correlation_id: str | None, key: str | None) -> SqlOperation:
        return SqlOperation(kind=kind, sql=sql, params=params, source=source or DEFAULT_SOURCE,
                            correlation_id=correlation_id or uuid.uuid4().hex, idempotency_key=key,
                            target=self.target)

    def _breaker(self) -> Any:
        return self._breakers.get(DATABASE_BREAKER) if self._breakers is not None else None

    async def run_operation(self, op: SqlOperation, *, attempt: int = 1, from_queue: bool = False) -> Any:
        """Run ``op`` through the breaker; on failure publish the event and (direct calls) queue it."""
        start = self.clock.monotonic()
        try:
            breaker = self._breaker()
            if breaker is None:
                result = await self._execute(op)
            else:
                result = await breaker.call(lambda: self._execute(op))
        except DazError as error:
            if error.correlation_id is None:
                error.correlation_id = op.correlation_id
            if error.operation_type is None:
                error.operation_type = op.operation_type
            outcome = "rejected" if isinstance(error, CircuitOpen) else "error"
            self.metrics.sql_operations.labels(kind=op.kind, outcome=outcome).inc()
            publish_failure(self.bus, op, error, attempt, self.clock)
            log.warning("sql.operation.failed", correlation_id=op.correlation_id, source=op.source,
                        operation_type=op.operation_type, error=error.message, retryable=error.retryable,
                        sqlstate=getattr(error, "sqlstate", None), attempt=attempt,
                        idempotent=op.idempotent)
            if not from_queue and op.kind != "query":
                queued = await self._hand_to_queue(op, error)
                if queued:
                    raise SqlRetryScheduled(
                        f"{error.message} (queued to retry as {RETRY_OPERATION})",
                        sqlstate=getattr(error, "sqlstate", None), retryable=True,
                        correlation_id=op.correlation_id, operation_type=op.operation_type,
                    ) from error
            raise
        self.metrics.sql_operations.labels(kind=op.kind, outcome="ok").inc()
        self.metrics.sql_duration.labels(kind=op.kind).observe(self.clock.monotonic() - start)
        return result

    async def _execute(self, op: SqlOperation) -> Any:
        try:
            async with self.backend.session() as session:
                if op.kind == "query":
                    return await session.fetch(op.sql, op.params)
                if op.kind == "exec" and op.idempotency_key is None:
                    return await session.execute(op.sql, op.params)
                async with session.transaction():
                    if op.idempotency_key is not None:
                        claimed = await session.execute(
                            _CLAIM_KEY, (op.idempotency_key, op.correlation_id, op.source)
                        )
                        if claimed == 0:
                            log.info("sql.exec.already_applied", correlation_id=op.correlation_id,
                                     idempotency_key=op.idempotency_key)
                            return 0
                    if op.kind == "exec_many":
                        return await session.executemany(op.sql, op.params)
                    return await session.execute(op.sql, op.params)
        except _EXEC_ERRORS as exc:
            raise self._translate(exc, op) from exc

    def _translate(self, exc: BaseException, op: SqlOperation) -> SqlError:
        """The one translation (``daz.db.errors``), said as a ``SqlError`` carrying the operation."""

        def sql_error(message: str, verdict: Classification) -> SqlError:
            return SqlError(message, sqlstate=verdict.sqlstate, retryable=verdict.retryable,
                            correlation_id=op.correlation_id, operation_type=op.operation_type)

        return translated(exc, op.operation_type, sql_error)

    async def _hand_to_queue(self, op: SqlOperation, error: DazError) -> bool:
        """Queue a re-run (idempotent + retryable) or a dead letter; True when a re-run was queued."""
        if self._queue is None:
            return False
        rerun = op.idempotent and error.retryable
        reason = None if rerun else (
            "not idempotent: never re-run automatically" if not op.idempotent else "not retryable"
        ) + f"; first error: {error.message}"
        item = NewItem(
            operation_type=RETRY_OPERATION,
            payload=op.to_payload(rerun=rerun, reason=reason),
            target=op.target,
            event_type=op.operation_type,
            correlation_id=op.correlation_id,
            # only re-runs dedupe by key: a dead letter must not shadow a later, retryable attempt
            idempotency_key=f"sql:{op.idempotency_key}" if rerun else None,
            max_retries=None if rerun else 0,
        )
        try:
            await self._queue.schedule(item)
        except DazError as exc:
            log.error(  # noqa: TRY400 - the queue's error is the news here, not a traceback
                "sql.operation.unqueued", correlation_id=op.correlation_id, error=exc.message, rerun=rerun
            )
            return False
        log.info("sql.operation.queued", correlation_id=op.correlation_id, rerun=rerun,
                 idempotency_key=op.idempotency_key)
        return rerun

    # retry handler ---------------------------------------------------------------------------
    async def handle_retry(self, item: QueueItem) -> None:
        """Re-run a queued ``sql_operation``; refuse (→ dead letter) items marked ``rerun: false``."""
        try:
            op = SqlOperation.from_payload(item.payload, correlation_id=item.correlation_id)
        except (ValueError, TypeError) as exc:
            raise SqlError(f"malformed sql_operation payload: {exc}", retryable=False,
                           correlation_id=item.correlation_id, operation_type=RETRY_OPERATION) from exc
        if not item.payload.get("rerun", False):
            raise SqlError(
                f"sql_operation not re-run: {item.payload.get('reason', 'not idempotent')}",
                retryable=False, correlation_id=item.correlation_id, operation_type=op.operation_type,
            )
        # item.attempt counts earlier queue attempts; attempt 1 was the caller's own call
        await self.run_operation(op, attempt=item.attempt + 2, from_queue=True)
