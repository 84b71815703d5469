"""The cross-instance hand-off: a line for a room held elsewhere goes to the journal only, and the
holder's puller brings it into the room's outbox in store order, once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

from daz.cluster.gate import LeaseGate
from daz.config import CytubeConfig, DazConfig, ProbeConfig, RoomConfig
from daz.cytube.handoff import HandoffPuller
from daz.cytube.journal import StoreJournal
from daz.cytube.outbox import OutboundLine, Outbox
from daz.cytube.rooms import RoomManager
from daz.cytube.states import RoomState
from daz.events.bus import EventBus
from daz.metrics import DazMetrics
from daz.testing import FakeClock
from daz.testing.fake_transport import FakeNetwork
from daz.testing.memory_store import InMemoryStore


def _line(key: str, room: str = "lobby") -> OutboundLine:
    return OutboundLine(key=key, room=room, kind="chat", text=f"text {key}", created_at=1.0)


class HeldRooms:
    """The room manager as the puller sees it: one outbox per room, some rooms held."""

    def __init__(self, journal: StoreJournal, held: set[str]) -> None:
        self.held = held
        self.outboxes = {r: Outbox(r, journal, capacity=5) for r in ("lobby", "other")}

    def held_rooms(self) -> list[str]:
        return sorted(self.held)

    async def take_handoff(self, line: OutboundLine) -> bool:
        if line.room not in self.held:
            return False
        return await self.outboxes[line.room].readmit(line, handoff=True)

    def keys(self, room: str) -> list[str]:
        box, keys = self.outboxes[room], []
        while (head := box.head()) is not None:
            keys.append(head.key)
            box.drop_head()
        return keys


async def test_the_holder_pulls_lines_stored_elsewhere_in_store_order_and_only_once() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    for key in ("a", "b", "c"):
        await journal.hand_off(_line(key))
    await journal.hand_off(_line("x", room="other"))
    rooms = HeldRooms(journal, {"lobby"})
    puller = HandoffPuller(journal, rooms)
    assert await puller.pull() == 3
    assert await puller.pull() == 0  # already in the outbox: nothing twice
    lobby = rooms.outboxes["lobby"]
    assert lobby.depth == 3
    assert lobby.in_doubt_since_ms == 1000  # a previous holder may have sent it: the backlog decides
    delivered = await lobby.ack_head(echo_ms=5)
    assert delivered is not None
    assert delivered.key == "a"
    await store.ack_pending("line:a")
    await journal.hand_off(_line("d"))
    assert await puller.pull() == 1
    assert rooms.keys("lobby") == ["b", "c", "d"]
    assert rooms.outboxes["other"].depth == 0  # not held here: its holder pulls it


async def test_a_delivered_line_whose_ack_is_late_is_not_pulled_again() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    rooms = HeldRooms(journal, {"lobby"})
    puller = HandoffPuller(journal, rooms)
    await journal.hand_off(_line("a"))
    await puller.pull()
    box = rooms.outboxes["lobby"]
    box.journal = _NoAck(journal)  # type: ignore[assignment] # the store ack is still on its way
    await box.ack_head(echo_ms=5)
    assert [line.key for line in await journal.pending(["lobby"])] == ["a"]
    assert await puller.pull() == 0
    assert box.delivered("a")


async def test_a_line_given_up_on_is_left_to_the_retry_queue_not_pulled_back() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    rooms = HeldRooms(journal, {"lobby"})
    puller = HandoffPuller(journal, rooms)
    await journal.hand_off(_line("a"))
    await puller.pull()
    box = rooms.outboxes["lobby"]
    box.drop_head()  # three echo timeouts
    assert await puller.pull() == 0
    assert await box.readmit(_line("a"))  # the retry queue's attempt still can


async def test_a_released_outbox_keeps_lines_in_the_journal_for_the_next_holder() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    box = Outbox("lobby", journal, capacity=5)
    await box.put(_line("a"))
    assert box.release() == 1
    await box.put(_line("b"))  # accepted while the lease is gone: journal only
    assert box.depth == 0
    assert not await box.readmit(_line("a"), handoff=True)
    assert [line.key for line in await journal.load("lobby")] == ["a", "b"]
    box.open()
    assert await box.restore() == 2
    assert box.in_doubt_since_ms == 1000


async def test_a_line_for_a_room_held_elsewhere_goes_to_the_journal_not_to_a_local_outbox() -> None:
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    config = DazConfig(rooms=[RoomConfig(channel="lobby", username="dazbot")],
                       cytube=CytubeConfig(probe=ProbeConfig(enabled=False), outbound_buffer_size=2))
    network = FakeNetwork()
    metrics = DazMetrics()
    async with EventBus(clock=clock, metrics=metrics) as bus:
        rooms = RoomManager(config, bus, metrics, clock, random.Random(1), network.factory, journal,
                            endpoint_factory=network.endpoint, leases=LeaseGate())
        keys = [key for i in range(5) for key in await rooms.send_chat("lobby", f"line {i}")]
        # More lines than the outbox holds: none waits here, so none is refused with OutboxFull.
        assert rooms.supervisor("lobby").outbox.depth == 0
        assert [line.key for line in await journal.pending(["lobby"])] == keys
        assert len(set(keys)) == 5


class _NoAck:
    def __init__(self, journal: StoreJournal) -> None:
        self.journal = journal

    async def save(self, line: OutboundLine) -> None:
        await self.journal.save(line)

    async def hand_off(self, line: OutboundLine) -> None:
        await self.journal.hand_off(line)

    async def ack(self, key: str) -> None:
        return None

    async def load(self, room: str) -> list[OutboundLine]:
        return await self.journal.load(room)


async def test_lines_accepted_under_an_earlier_lease_are_reconciled_before_a_later_holder_sends_them(
) -> None:
    """The fence's guarantee. A accepts two lines under fence 1 and loses the room with the first in
    flight (the server has it, the echo never came); B (fence 2) restores both in doubt, finds the
    first in the join backlog and sends only the second; A (fence 3) must send neither again. Without
    the outbox release on lease loss, A still holds the second line as its own and sends it twice."""
    clock = FakeClock()
    store = InMemoryStore(clock)
    network = FakeNetwork()
    room = RoomConfig(channel="lobby", username="dazbot", password="pw")  # type: ignore[arg-type]
    config = DazConfig(rooms=[room],  # registered: no guest-login window between the joins
                       cytube=CytubeConfig(probe=ProbeConfig(enabled=False), delivery_timeout_seconds=30))
    metrics = DazMetrics()
    async with EventBus(clock=clock, metrics=metrics) as bus, asyncio.TaskGroup() as group:
        gates = {name: LeaseGate() for name in ("a", "b")}
        managers = {name: RoomManager(config, bus, metrics, clock, random.Random(1), network.factory,
                                      StoreJournal(store, clock, hold_seconds=300, max_retries=5),
                                      endpoint_factory=network.endpoint, leases=gates[name])
                    for name in ("a", "b")}
        stopping = asyncio.Event()
        for name, manager in managers.items():
            group.create_task(manager.run(stopping), name=f"test.rooms.{name}")

        async def hold(name: str, fence: int) -> None:
            await gates[name].on_acquire("lobby", fence)
            for _ in range(200):
                if managers[name].room_state("lobby") is RoomState.READY:
                    return
                await clock.advance(0.1)
            raise AssertionError(f"{name} never READY")

        async def settle() -> None:
            for _ in range(20):
                await clock.advance(0.1)

        await hold("a", 1)
        network.echo_chat = False  # the server records a's first line; a never sees the echo
        await managers["a"].send_chat("lobby", "first")
        await managers["a"].send_chat("lobby", "second")
        await settle()
        await gates["a"].on_lose("lobby", "lease_lost")
        network.echo_chat = True
        await hold("b", 2)
        await settle()
        await gates["b"].on_lose("lobby", "rebalance")
        await hold("a", 3)
        await settle()
        stopping.set()
    assert [line.text for line in network.chat_log] == ["first", "second"]


async def test_a_line_pulled_and_delivered_while_its_own_save_returns_is_not_appended_again() -> None:
    """put() saves, the save's NOTIFY wakes the puller, the puller's line is sent and echoed, and only
    then does put() resume: it must not queue the line a second time."""
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    box = Outbox("lobby", journal, capacity=5)

    class RacingJournal(_NoAck):
        async def save(self, line: OutboundLine) -> None:
            await journal.save(line)
            assert await box.readmit(line, handoff=True)  # the puller got there first...
            await box.ack_head(echo_ms=5)  # ...and the room delivered it

    box.journal = RacingJournal(journal)  # type: ignore[assignment]
    await box.put(_line("a"))
    assert box.depth == 0


def _lobby_manager(clock: FakeClock, journal: StoreJournal, network: FakeNetwork, gate: LeaseGate,  # noqa: PLR0917
                   bus: EventBus, metrics: DazMetrics) -> RoomManager:
    room = RoomConfig(channel="lobby", username="dazbot", password="pw")  # type: ignore[arg-type]
    config = DazConfig(rooms=[room],
                       cytube=CytubeConfig(probe=ProbeConfig(enabled=False), delivery_timeout_seconds=30))
    return RoomManager(config, bus, metrics, clock, random.Random(1), network.factory, journal,
                       endpoint_factory=network.endpoint, leases=gate)


async def _run_until_ready_and_settled(manager: RoomManager, clock: FakeClock) -> None:
    for _ in range(200):
        if manager.room_state("lobby") is RoomState.READY:
            break
        await clock.advance(0.1)
    else:
        raise AssertionError("never READY")
    for _ in range(20):
        await clock.advance(0.1)


async def test_a_sender_that_takes_the_room_sends_its_handed_off_lines_before_its_next_one() -> None:
    """Lines 0 and 1 were handed off while another instance held the room; this instance takes the
    room and, before its room task has restored the journal, sends line 2 as the holder. Per sender,
    in order: 0, 1, 2. Appending line 2 straight away put it AHEAD of 0 and 1 (restore appends
    behind it) - and behind a fresh echo, an inherited line the old holder had delivered is no
    longer found in the join backlog, so it is sent twice."""
    clock = FakeClock()
    store = InMemoryStore(clock)
    journal = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    network = FakeNetwork()
    metrics = DazMetrics()
    gate = LeaseGate()
    async with EventBus(clock=clock, metrics=metrics) as bus, asyncio.TaskGroup() as group:
        manager = _lobby_manager(clock, journal, network, gate, bus, metrics)
        stopping = asyncio.Event()
        group.create_task(manager.run(stopping), name="test.rooms")
        await manager.send_chat("lobby", "line 0")
        await manager.send_chat("lobby", "line 1")
        await gate.on_acquire("lobby", 1)
        await manager.send_chat("lobby", "line 2")  # before the room task has run at all
        await _run_until_ready_and_settled(manager, clock)
        stopping.set()
    assert [line.text for line in network.chat_log] == ["line 0", "line 1", "line 2"]


async def test_a_hand_off_that_commits_after_the_new_holders_restore_still_goes_first() -> None:
    """Line 0's hand-off is still on its way to the store when this instance takes the room; the
    room's restore reads the journal without it. Line 1, sent after line 0's call returned, goes
    through the holder's outbox: it must not overtake line 0."""
    clock = FakeClock()
    store = InMemoryStore(clock)
    inner = StoreJournal(store, clock, hold_seconds=300, max_retries=5)
    commit = asyncio.Event()

    class SlowHandOff(StoreJournal):
        async def hand_off(self, line: OutboundLine) -> None:
            await commit.wait()
            await inner.hand_off(line)

    journal = SlowHandOff(store, clock, hold_seconds=300, max_retries=5)
    network = FakeNetwork()
    metrics = DazMetrics()
    gate = LeaseGate()
    async with EventBus(clock=clock, metrics=metrics) as bus, asyncio.TaskGroup() as group:
        manager = _lobby_manager(clock, journal, network, gate, bus, metrics)
        stopping = asyncio.Event()
        group.create_task(manager.run(stopping), name="test.rooms")
        first = group.create_task(manager.send_chat("lobby", "line 0"), name="test.first")
        await asyncio.sleep(0)  # line 0 is in hand_off, not stored yet
        await gate.on_acquire("lobby", 1)
        await _run_until_ready_and_settled(manager, clock)  # restored: nothing in the journal yet
        commit.set()
        await first
        await manager.send_chat("lobby", "line 1")
        for _ in range(20):
            await clock.advance(0.1)
        stopping.set()
    assert [line.text for line in network.chat_log] == ["line 0", "line 1"]


class _DiesBeforeAck(StoreJournal):
    """An instance that dies before its store acks: what it delivered stays pending in the store."""

    async def ack(self, key: str) -> None:
        return None


@contextlib.asynccontextmanager
async def _b_holds_the_room_and_never_acks() -> AsyncIterator[
    tuple[FakeClock, InMemoryStore, FakeNetwork, dict[str, LeaseGate], dict[str, RoomManager]]
]:
    """Two instances on one store, both running: b holds the lobby (READY, settled) and never acks
    what it delivers; a holds nothing yet. Yields (clock, store, network, gates, managers) and stops
    both managers when the block ends."""
    clock = FakeClock()
    store = InMemoryStore(clock)
    network = FakeNetwork()
    metrics = DazMetrics()

    gates = {name: LeaseGate() for name in ("a", "b")}
    async with EventBus(clock=clock, metrics=metrics) as bus, asyncio.TaskGroup() as group:
        managers = {
            "a": _lobby_manager(clock, StoreJournal(store, clock, hold_seconds=300, max_retries=5),
                                network, gates["a"], bus, metrics),
            "b": _lobby_manager(clock, _DiesBeforeAck(store, clock, hold_seconds=300, max_retries=5),
                                network, gates["b"], bus, metrics),
        }
        stopping = asyncio.Event()
        for name, manager in managers.items():
            group.create_task(manager.run(stopping), name=f"test.rooms.{name}")
        await gates["b"].on_acquire("lobby", 1)
        await _run_until_ready_and_settled(managers["b"], clock)
        yield clock, store, network, gates, managers
        stopping.set()


async def test_a_new_holders_first_line_does_not_make_it_resend_what_the_old_holder_delivered() -> None:
    """b delivers "old" (the server has it, the echo came) and dies before its store ack: "old" is
    still pending. a takes the room and sends "new" at once. "old" must be recognised in a's join
    backlog. With "new" queued ahead of it, "new"'s echo became the bound below which the backlog
    was not searched, and "old" went out a second time."""
    async with _b_holds_the_room_and_never_acks() as (clock, _, network, gates, managers):
        await managers["b"].send_chat("lobby", "old")
        for _ in range(20):
            await clock.advance(0.1)
        await gates["b"].on_lose("lobby", "lease_lost")
        await gates["a"].on_acquire("lobby", 2)
        await managers["a"].send_chat("lobby", "new")
        await _run_until_ready_and_settled(managers["a"], clock)
    assert [line.text for line in network.chat_log] == ["old", "new"]


async def _take_over_after_an_unacked_delivery(unsent: str, delivered: str) -> list[str]:
    """b holds the room; another instance stores ``unsent`` (b has not pulled it: no puller here);
    b sends ``delivered`` (the server has it) and dies before its store ack; a takes the room.
    Returns the server's chat log."""
    async with _b_holds_the_room_and_never_acks() as (clock, store, network, gates, managers):
        other = StoreJournal(store, clock, hold_seconds=300, max_retries=5)  # a third instance's
        await other.hand_off(OutboundLine(key="c:1", room="lobby", kind="chat", text=unsent,
                                          created_at=clock.now().timestamp()))
        await managers["b"].send_chat("lobby", delivered)
        for _ in range(20):
            await clock.advance(0.1)
        await gates["b"].on_lose("lobby", "lease_lost")
        await gates["a"].on_acquire("lobby", 2)
        await _run_until_ready_and_settled(managers["a"], clock)
    return [line.text for line in network.chat_log]


async def test_an_inherited_line_the_old_holder_sent_after_a_lower_id_one_is_not_sent_again() -> None:
    """Store (id) order and server order differ across senders: b sent "delivered" while "unsent",
    stored just before it by another instance, was still unpulled. a restores both in id order,
    sends "unsent" first, and must still find "delivered" in its join backlog. Bounding that search
    by a's newest echo (of "unsent", sent after the join) excluded the whole backlog, and
    "delivered" went out twice."""
    assert await _take_over_after_an_unacked_delivery("unsent", "delivered") == ["delivered", "unsent"]


async def test_one_replayed_line_confirms_one_inherited_line_not_two_with_the_same_text() -> None:
    """Two inherited lines with the same text, one of them on the server: the backlog's one copy
    settles one of them; the other is sent. (Searched from their creation time, both would match
    the same replayed line and one line would be lost.)"""
    assert await _take_over_after_an_unacked_delivery("same", "same") == ["same", "same"]
