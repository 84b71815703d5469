"""An in-memory ``RetryStore`` with the same behaviour as the SQL stores (checked by tests/contract).

Claims scan every row, so it is for tests and demos, not for large queues.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import dataclasses
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from daz.clock import Clock, SystemClock
from daz.errors import ItemNotFound, StaleFence, StoreUnavailable
from daz.store.base import (
    DEFAULT_LIST_LIMIT,
    REQUEUEABLE_STATUSES,
    TERMINAL_STATUSES,
    ClaimedSchedule,
    ItemStatus,
    NewItem,
    QueueItem,
    StatsRow,
    WakeCallback,
    validate_status,
    with_defaults,
)


class InMemoryStore:
    """Implements ``daz.store.base.RetryStore`` in a dict. ``available = False`` simulates an outage."""

    backend = "memory"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._rows: dict[int, QueueItem] = {}
        self._ids = itertools.count(1)
        self._listeners: list[WakeCallback] = []
        self.available = True

    # helpers ----------------------------------------------------------------------------------
    def _check(self) -> None:
        if not self.available:
            raise StoreUnavailable("in-memory store marked unavailable")

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def _owned(self, id: int, fence: int) -> QueueItem:
        row = self._rows.get(id)
        if row is None or row.fence != fence or row.status != ItemStatus.PROCESSING:
            raise StaleFence(id, fence)
        return row

    def _put(self, row: QueueItem, **changes: Any) -> QueueItem:
        changes.setdefault("reclaimed", False)
        new = dataclasses.replace(row, **changes, updated_at=self.clock.now())
        self._rows[row.id] = new
        return new

    # protocol ---------------------------------------------------------------------------------
    async def schedule(self, items: Sequence[NewItem]) -> list[int]:
        self._check()
        ids, _ = self._insert(items, None, 0.0)
        if ids:
            self._notify()
        return ids

    async def schedule_claimed(
        self, items: Sequence[NewItem], owner: str, lease_seconds: float
    ) -> ClaimedSchedule:
        self._check()
        ids, claimed = self._insert(items, owner, lease_seconds)
        return ClaimedSchedule(
            ids, [dataclasses.replace(c, payload=copy.deepcopy(c.payload)) for c in claimed]
        )

    def _insert(
        self, items: Sequence[NewItem], owner: str | None, lease_seconds: float
    ) -> tuple[builtins.list[int], builtins.list[QueueItem]]:
        """Insert pending rows, or (with an ``owner``) rows already claimed by it."""
        now = self.clock.now()
        ids: builtins.list[int] = []
        inserted: builtins.list[QueueItem] = []
        by_key = {r.idempotency_key: r.id for r in self._rows.values() if r.idempotency_key is not None}
        for given in items:
            if given.idempotency_key is not None and given.idempotency_key in by_key:
                ids.append(by_key[given.idempotency_key])
                continue
            item = with_defaults(given, now)
            new_id = next(self._ids)
            row = self._rows[new_id] = QueueItem(
                id=new_id,
                correlation_id=item.correlation_id,
                idempotency_key=item.idempotency_key,
                operation_type=item.operation_type,
                target=item.target,
                event_type=item.event_type,
                payload=copy.deepcopy(item.payload),
                status=ItemStatus.PENDING if owner is None else ItemStatus.PROCESSING,
                priority=item.priority,
                attempt=0,
                max_retries=item.max_retries,
                retry_after=item.retry_after,
                lease_until=None if owner is None else now + timedelta(seconds=lease_seconds),
                lease_owner=owner,
                fence=0 if owner is None else 1,
                timeout_seconds=item.timeout_seconds,
                last_error=None,
                created_at=now,
                updated_at=now,
            )
            if item.idempotency_key is not None:
                by_key[item.idempotency_key] = new_id
            ids.append(new_id)
            inserted.append(row)
        return ids, inserted

    async def claim_due(
        self,
        batch: int,
        lease_seconds: float,
        owner: str,
        *,
        operation_types: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
    ) -> list[QueueItem]:
        self._check()
        now = self.clock.now()

        def eligible(r: QueueItem) -> bool:
            if operation_types is not None and r.operation_type not in operation_types:
                return False
            return targets is None or r.target is None or r.target in targets

        expired = sorted(
            (r for r in self._rows.values()
             if r.status == ItemStatus.PROCESSING and r.lease_until is not None and r.lease_until < now
             and eligible(r)),
            key=lambda r: (r.lease_until, r.id),
        )
        due = sorted(
            (r for r in self._rows.values()
             if r.status == ItemStatus.PENDING and r.retry_after <= now and eligible(r)),
            key=lambda r: (-r.priority, r.retry_after, r.id),
        )
        lease_until = now + timedelta(seconds=lease_seconds)
        claimed: list[QueueItem] = []
        for row, reclaimed in itertools.chain(((r, True) for r in expired), ((r, False) for r in due)):
            if len(claimed) >= batch:
                break
            claimed.append(self._put(
                row, status=ItemStatus.PROCESSING, fence=row.fence + 1, lease_until=lease_until,
                lease_owner=owner, reclaimed=reclaimed,
            ))
        return [dataclasses.replace(c, payload=copy.deepcopy(c.payload)) for c in claimed]

    async def heartbeat(self, id: int, fence: int, lease_seconds: float) -> bool:
        self._check()
        try:
            row = self._owned(id, fence)
        except StaleFence:
            return False
        self._put(row, lease_until=self.clock.now() + timedelta(seconds=lease_seconds))
        return True

    async def complete(self, id: int, fence: int) -> None:
        self._check()
        row = self._owned(id, fence)
        self._put(row, status=ItemStatus.COMPLETED, lease_until=None, lease_owner=None)

    async def complete_many(self, claims: Sequence[tuple[int, int]]) -> list[int]:
        self._check()
        stale: list[int] = []
        for id, fence in claims:
            try:
                await self.complete(id, fence)
            except StaleFence:
                stale.append(id)
        return stale

    async def reschedule(
        self,
        id: int,
        fence: int,
        at: datetime,
        error: str | None,
        *,
        count_attempt: bool = True,
        deferred_by: str | None = None,
    ) -> None:
        self._check()
        row = self._owned(id, fence)
        self._put(
            row, status=ItemStatus.PENDING, retry_after=at,
            last_error=error if error is not None else row.last_error,
            attempt=row.attempt + (1 if count_attempt else 0), lease_until=None, lease_owner=None,
            deferred_by=deferred_by,
        )

    async def dead_letter(self, id: int, fence: int, reason: str) -> None:
        self._check()
        row = self._owned(id, fence)
        self._put(row, status=ItemStatus.DEAD_LETTER, last_error=reason, attempt=row.attempt + 1,
                  lease_until=None, lease_owner=None, deferred_by=None)

    async def requeue(
        self,
        *,
        ids: Sequence[int] | None = None,
        operation_type: str | None = None,
        all_dead: bool = False,
    ) -> int:
        self._check()
        now = self.clock.now()
        moved = 0
        for row in builtins.list(self._rows.values()):
            if row.status not in REQUEUEABLE_STATUSES:
                continue
            if not (all_dead or (ids is not None and row.id in ids)
                    or (operation_type is not None and row.operation_type == operation_type)):
                continue
            self._put(row, status=ItemStatus.PENDING, attempt=0, retry_after=now, lease_until=None,
                      lease_owner=None, deferred_by=None)
            moved += 1
        if moved:
            self._notify()
        return moved

    async def release_deferred(self, breaker_name: str, limit: int) -> int:
        self._check()
        now = self.clock.now()
        rows = sorted(
            (r for r in self._rows.values()
             if r.status == ItemStatus.PENDING and r.deferred_by == breaker_name),
            key=lambda r: (r.retry_after, r.id),
        )[: max(limit, 0)]
        for row in rows:
            self._put(row, retry_after=now, deferred_by=None)
        if rows:
            self._notify()
        return len(rows)

    async def ack_pending(self, idempotency_key: str) -> bool:
        self._check()
        for row in self._rows.values():
            if row.idempotency_key == idempotency_key and row.status == ItemStatus.PENDING:
                self._put(row, status=ItemStatus.COMPLETED)
                return True
        return False

    async def purge(self, older_than: timedelta, status: str | None = None) -> int:
        self._check()
        validate_status(status)
        cutoff = self.clock.now() - older_than
        statuses = (status,) if status is not None else TERMINAL_STATUSES
        doomed = [r.id for r in self._rows.values() if r.status in statuses and r.updated_at < cutoff]
        for id in doomed:
            del self._rows[id]
        return len(doomed)

    async def cleanup(self, retention: timedelta) -> int:
        return await self.purge(retention, ItemStatus.COMPLETED)

    async def stats(self) -> list[StatsRow]:
        self._check()
        now = self.clock.now()
        groups: dict[tuple[str, str], builtins.list[QueueItem]] = {}
        for row in self._rows.values():
            groups.setdefault((row.operation_type, row.status), []).append(row)
        out = []
        for (op, status), rows in sorted(groups.items()):
            attempts = [r.attempt for r in rows]
            oldest = (
                (now - min(r.created_at for r in rows)).total_seconds()
                if status == ItemStatus.PENDING else None
            )
            out.append(StatsRow(op, status, len(rows), sum(attempts) / len(rows), max(attempts), oldest))
        return out

    async def dead_letters_since(self, since: datetime) -> int:
        self._check()
        return sum(1 for r in self._rows.values()
                   if r.status == ItemStatus.DEAD_LETTER and r.updated_at >= since)

    async def get(self, id: int) -> QueueItem:
        self._check()
        row = self._rows.get(id)
        if row is None:
            raise ItemNotFound(f"no queue item with id {id}")
        return row

    async def list(
        self,
        *,
        status: str | None = None,
        operation_type: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> builtins.list[QueueItem]:
        self._check()
        validate_status(status)
        rows = [
            r for r in sorted(self._rows.values(), key=lambda r: r.id)
            if (status is None or r.status == status)
            and (operation_type is None or r.operation_type == operation_type)
        ]
        return rows[:limit]

    async def next_due_at(self) -> datetime | None:
        self._check()
        moments = [r.retry_after for r in self._rows.values() if r.status == ItemStatus.PENDING]
        moments += [
            r.lease_until for r in self._rows.values()
            if r.status == ItemStatus.PROCESSING and r.lease_until is not None
        ]
        return min(moments) if moments else None

    @contextlib.asynccontextmanager
    async def wakeups(self, on_wake: WakeCallback) -> AsyncIterator[None]:
        self._listeners.append(on_wake)
        try:
            yield
        finally:
            self._listeners.remove(on_wake)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        self._listeners.clear()
