"""Outage tests end when the queue has settled: nothing spooled, nothing of a type still in flight."""

from __future__ import annotations

from daz.errors import StoreError
from daz.retry.spool import Spool
from daz.store.base import RetryStore

IN_FLIGHT = ("pending", "processing")


async def queue_settled(store: RetryStore, spool: Spool, operation_type: str = "sql_operation") -> bool:
    """True once the spool is empty and no ``operation_type`` item is pending or processing.

    An unreachable store counts as not settled (the test keeps waiting, within its own bound).
    """
    if await spool.count():
        return False
    try:
        rows = await store.stats()
    except StoreError:
        return False
    return not any(r.operation_type == operation_type and r.status in IN_FLIGHT and r.count for r in rows)
