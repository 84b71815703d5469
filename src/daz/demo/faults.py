"""Fault switches the demo flips: a database that refuses sessions, and a poison operation."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from daz.errors import DazError
from daz.sql.backends import Backend, Session
from daz.store.base import QueueItem

POISON_OPERATION = "demo_poison"


class SwitchedBackend:
    """Wraps the SQL service's backend; while ``down`` every session fails like a lost database.

    The failure is a ``ConnectionRefusedError``, so it goes through the SQL service's real
    classification (retryable, connection) and the real breaker/queue path, not a demo shortcut.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.down = False
        self.refused = 0

    async def start(self, *, require: bool) -> None:
        await self.inner.start(require=require)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        if self.down:
            self.refused += 1
            raise ConnectionRefusedError("database unavailable (demo fault switch)")
        async with self.inner.session() as session:
            yield session

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Poison:
    """A queue handler that fails permanently until ``fixed`` (the operator's fix), then succeeds."""

    def __init__(self) -> None:
        self.fixed = False
        self.attempts = 0
        self.succeeded: list[int] = []

    async def handle(self, item: QueueItem) -> None:
        self.attempts += 1
        if not self.fixed:
            raise DazError("poison: payload refers to a table that does not exist yet", retryable=False,
                           correlation_id=item.correlation_id, operation_type=POISON_OPERATION)
        self.succeeded.append(item.id)
