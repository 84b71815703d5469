"""``daz.testing.settle.queue_settled``: the end condition of the outage tests."""

from __future__ import annotations

from pathlib import Path

from daz.retry.spool import Spool
from daz.store.base import NewItem
from daz.testing import FakeClock
from daz.testing.memory_store import InMemoryStore
from daz.testing.settle import queue_settled


def _item(op: str = "sql_operation") -> NewItem:
    return NewItem(operation_type=op, payload={"sql": "SELECT 1"}, max_retries=3)


async def test_settled_only_when_spool_and_queue_are_empty(tmp_path: Path) -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    spool = Spool(tmp_path / "spool.sqlite", max_items=10)
    try:
        assert await queue_settled(store, spool)
        await store.schedule([_item("cytube_command")])
        assert await queue_settled(store, spool)  # another operation type does not count
        await store.schedule([_item()])
        assert not await queue_settled(store, spool)
        store.available = False
        assert not await queue_settled(store, spool)  # unreachable store: keep waiting
        store.available = True
        [claimed] = await store.claim_due(10, 30, "w", operation_types=["sql_operation"])
        await store.complete(claimed.id, claimed.fence)
        assert await queue_settled(store, spool)
        await spool([_item()])
        assert not await queue_settled(store, spool)  # something still spooled
    finally:
        await spool.close()
