"""The RetryStore-backed outbound journal: durability of unsent chat lines, and its queue handler."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from daz.cytube.actions import NewPoll, QueueMedia, action_from_record, to_record
from daz.cytube.journal import (
    CYTUBE_COMMAND,
    ROOM_DOWN_DEFER_SECONDS,
    LineRedelivery,
    RoomAvailabilityGate,
    StoreJournal,
)
from daz.cytube.outbox import OutboundLine, Outbox
from daz.cytube.states import RoomState
from daz.errors import DazError
from daz.testing import FakeClock
from daz.testing.memory_store import InMemoryStore


class FakeRooms:
    """The room manager as the journal sees it."""

    def __init__(self, state: RoomState = RoomState.READY, held: bool = True) -> None:
        self.state = state
        self.held = held
        self.outbox: dict[str, OutboundLine] = {}
        self.resent: list[str] = []
        self.done: set[str] = set()

    def rooms(self) -> list[str]:
        return ["lobby"]

    def room_state(self, room: str) -> RoomState:
        return self.state

    def holds(self, room: str) -> bool:
        return self.held

    def has_line(self, room: str, key: str) -> bool:
        return key in self.outbox

    def delivered(self, room: str, key: str) -> bool:
        return key in self.done

    async def resend(self, line: OutboundLine) -> None:
        self.resent.append(line.key)
        self.outbox[line.key] = line


class InnerGate:
    def __init__(self, answer: float | None) -> None:
        self.answer = answer
        self.asked = 0
        self.recorded = 0

    def before_attempt(self, item: Any, policy: Any) -> float | None:
        self.asked += 1
        return self.answer

    def record(self, item: Any, policy: Any, outcome: BaseException | None, duration: float) -> None:
        self.recorded += 1


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


async def test_an_overdue_line_waits_for_its_echo_then_completes() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=0, max_retries=5)
    rooms = FakeRooms()
    redelivery = LineRedelivery(journal, rooms)
    await journal.save(_line("a"))
    rooms.outbox["a"] = _line("a")
    await clock.advance(1)
    [item] = await store.claim_due(1, 30, "w")
    async with asyncio.TaskGroup() as tg:
        attempt = tg.create_task(redelivery.handle(item))
        await asyncio.sleep(0)
        assert not attempt.done()  # still waiting for the echo
        await journal.ack("a")  # the room delivered it
    assert attempt.exception() is None
    assert rooms.resent == []


async def test_a_line_missing_from_the_outbox_is_sent_again() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=0, max_retries=5)
    rooms = FakeRooms()
    redelivery = LineRedelivery(journal, rooms)
    await journal.save(_line("a"))
    await clock.advance(1)
    [item] = await store.claim_due(1, 30, "w")
    async with asyncio.TaskGroup() as tg:
        attempt = tg.create_task(redelivery.handle(item))
        await asyncio.sleep(0)
        assert rooms.resent == ["a"]
        await journal.ack("a")
    assert attempt.exception() is None


async def test_an_item_for_an_unknown_room_is_not_retryable() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=0, max_retries=5)
    redelivery = LineRedelivery(journal, FakeRooms())
    await journal.save(_line("a", room="elsewhere"))
    await clock.advance(1)
    [item] = await store.claim_due(1, 30, "w")
    with pytest.raises(DazError, match="not configured") as info:
        await redelivery.handle(item)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("state", "held", "deferred"),
    [(RoomState.READY, True, False), (RoomState.BACKING_OFF, True, True), (RoomState.READY, False, True)],
)
async def test_room_gate_defers_lines_without_charging_while_the_room_is_not_ready(
    state: RoomState, held: bool, deferred: bool
) -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=0, max_retries=5)
    await journal.save(_line("a"))
    await clock.advance(1)
    [item] = await store.claim_due(1, 30, "w")
    inner = InnerGate(None)
    gate = RoomAvailabilityGate(inner, FakeRooms(state, held))
    answer = gate.before_attempt(item, None)
    assert (answer == ROOM_DOWN_DEFER_SECONDS) is deferred
    assert inner.asked == (0 if deferred else 1)


async def test_room_gate_passes_other_operation_types_to_the_inner_gate() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    from daz.store.base import NewItem

    await store.schedule([NewItem(operation_type="sql_operation", payload={}, max_retries=3,
                                  retry_after=clock.now())])
    [item] = await store.claim_due(1, 30, "w")
    inner = InnerGate(7.0)
    gate = RoomAvailabilityGate(inner, FakeRooms(RoomState.BACKING_OFF))
    assert gate.before_attempt(item, None) == 7.0
    gate.record(item, None, None, 0.1)
    assert inner.recorded == 1


async def test_an_unreachable_store_does_not_lose_the_send() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=10, max_retries=5)
    store.available = False
    await journal.save(_line("a"))  # logged, not raised: the line is still in the room's outbox
    await journal.ack("a")
    assert await journal.load("lobby") == []


async def test_an_action_line_survives_a_restart_with_its_action_and_comes_back_in_doubt() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    queued = QueueMedia("rt", "rtmp://x/a", duration=30)
    poll = NewPoll("Lunch?", ("pizza", "soup"), timeout=60)
    for key, action in (("q", queued), ("p", poll)):
        await journal.save(OutboundLine(key=key, room="lobby", kind="action", text=action.describe(),
                                        action=to_record(action), created_at=5.0))
    await journal.save(_line("c"))
    # A new process: a fresh outbox restores what the store still holds, in order.
    outbox = Outbox("lobby", StoreJournal(store, clock, hold_seconds=300, max_retries=5), 10)
    assert await outbox.restore() == 3
    head = outbox.head()
    assert head is not None
    assert (head.kind, head.key) == ("action", "q")
    assert head.action is not None
    assert action_from_record(dict(head.action)) == queued
    assert outbox.in_doubt_since_ms == 5000  # a previous process may have sent it: reconcile first
    await outbox.ack_head(None)
    second = outbox.head()
    assert second is not None
    assert second.action is not None
    assert action_from_record(dict(second.action)) == poll
    due_kinds = [i.payload["kind"] for i in await store.list(status="pending", operation_type=CYTUBE_COMMAND)]
    assert due_kinds.count("action") == 1  # the acknowledged one is done in the store too
