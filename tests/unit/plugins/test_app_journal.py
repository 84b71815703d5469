"""The RetryStore-backed outbound journal wired in daz.app (durability of unsent chat lines)."""

from __future__ import annotations

import pytest

from daz.app import CYTUBE_COMMAND, StoreJournal
from daz.cytube.outbox import OutboundLine
from daz.errors import DazError
from daz.testing import FakeClock
from daz.testing.memory_store import InMemoryStore


def _line(key: str, room: str = "lobby", text: str = "hi") -> OutboundLine:
    return OutboundLine(key=key, room=room, kind="chat", text=text, correlation_id=f"c-{key}", created_at=1.0)


async def test_saved_lines_load_in_order_per_room_until_acked() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    for key in ("a", "b", "c"):
        await journal.save(_line(key, text=f"text {key}"))
    await journal.save(_line("x", room="other"))
    await journal.save(_line("a", text="text a"))  # saving the same line again does not duplicate it
    loaded = await journal.load("lobby")
    assert [(line.key, line.text, line.correlation_id) for line in loaded] == [
        ("a", "text a", "c-a"), ("b", "text b", "c-b"), ("c", "text c", "c-c")]
    await journal.ack("b")
    assert [line.key for line in await journal.load("lobby")] == ["a", "c"]
    assert [line.key for line in await journal.load("other")] == ["x"]
    # Not due before the hold: the queue leaves lines that are on their way alone.
    assert await store.claim_due(10, 30, "w", operation_types=[CYTUBE_COMMAND]) == []
    await clock.advance(301)
    due = await store.claim_due(10, 30, "w", operation_types=[CYTUBE_COMMAND])
    assert sorted(i.payload["key"] for i in due) == ["a", "c", "x"]


async def test_an_overdue_line_is_reported_retryable() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=0, max_retries=5)
    await journal.save(_line("a"))
    await clock.advance(1)
    [item] = await store.claim_due(1, 30, "w")
    with pytest.raises(DazError, match="not delivered yet") as info:
        await journal.handle(item)
    assert info.value.retryable is True


async def test_an_unreachable_store_does_not_lose_the_send() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=10, max_retries=5)
    store.available = False
    await journal.save(_line("a"))  # logged, not raised: the line is still in the room's outbox
    await journal.ack("a")
    assert await journal.load("lobby") == []
