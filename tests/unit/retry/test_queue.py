"""RetryQueue with the in-memory store and a FakeClock: outcomes, events, metrics, fencing, gates."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest

from daz.config import RetryConfig, RetryPolicyConfig
from daz.errors import DazError, StoreUnavailable
from daz.events.bus import Event, EventBus
from daz.metrics import DazMetrics
from daz.retry import RetryPolicy, RetryQueue
from daz.store import ClaimedSchedule, NewItem, QueueItem
from daz.testing import FakeClock, InMemoryStore

LEASE = 30.0


def config(**policy: float) -> RetryConfig:
    fields: dict[str, float] = {"max_retries": 3, "initial_delay_seconds": 5, "max_delay_seconds": 60,
                                "backoff_multiplier": 2, "jitter": 0, "timeout_seconds": 20}
    fields.update(policy)
    return RetryConfig(
        worker_count=2, batch_size=10, lease_seconds=LEASE, heartbeat_interval_seconds=10,
        poll_interval_seconds=10, retry_policies={"op": RetryPolicyConfig(**fields)},
    )


async def settle(turns: int = 200) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


@dataclasses.dataclass
class Harness:
    queue: RetryQueue
    store: InMemoryStore
    clock: FakeClock
    bus: EventBus
    metrics: DazMetrics
    events: list[Event]
    stopping: asyncio.Event

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def advance(self, seconds: float) -> None:
        await settle()
        await self.clock.advance(seconds)
        await settle()
        await self.bus.drain()


def make_harness(
    store_cls: type[InMemoryStore] = InMemoryStore, cfg: RetryConfig | None = None
) -> tuple[InMemoryStore, FakeClock, DazMetrics, RetryConfig]:
    clock = FakeClock()
    return store_cls(clock), clock, DazMetrics(), cfg or config()


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with Running(*make_harness()) as harness:
        yield harness


class Running:
    """Run a RetryQueue in a TaskGroup for the duration of the block."""

    def __init__(self, store: InMemoryStore, clock: FakeClock, metrics: DazMetrics, cfg: RetryConfig,
                 gate: object | None = None) -> None:
        self.args = (store, clock, metrics, cfg, gate)

    async def __aenter__(self) -> Harness:
        store, clock, metrics, cfg, gate = self.args
        self.bus = EventBus(clock=clock, metrics=metrics)
        await self.bus.__aenter__()
        self.recording = self.bus.recording("retry.**")
        events = await self.recording.__aenter__()
        queue = RetryQueue(store, cfg, self.bus, metrics, clock, random.Random(1), gate)  # type: ignore[arg-type]
        self.stopping = asyncio.Event()
        self.group = asyncio.TaskGroup()
        await self.group.__aenter__()
        self.task = self.group.create_task(queue.run(self.stopping), name="test.queue")
        await settle()
        return Harness(queue, store, clock, self.bus, metrics, events, self.stopping)

    async def __aexit__(self, *exc: object) -> None:
        self.stopping.set()
        await settle()
        await self.group.__aexit__(None, None, None)
        await self.recording.__aexit__(None, None, None)
        await self.bus.__aexit__(None, None, None)


def names(events: Sequence[Event]) -> list[str]:
    return [e.name for e in events]


async def test_success_runs_handler_once_with_keys_and_publishes_events(h: Harness) -> None:
    seen: list[QueueItem] = []

    async def handler(item: QueueItem) -> None:
        seen.append(item)

    h.queue.register("op", handler)
    [item_id] = await h.queue.schedule(
        NewItem("op", {"x": 1}, idempotency_key="k-1", correlation_id="corr-1")
    )
    await h.advance(4.9)
    assert seen == []  # the first retry waits initial_delay_seconds
    await h.advance(0.2)
    assert [(i.id, i.idempotency_key, i.correlation_id, i.payload) for i in seen] == [
        (item_id, "k-1", "corr-1", {"x": 1})]
    assert (await h.store.get(item_id)).status == "completed"
    assert names(h.events) == ["retry.scheduled", "retry.succeeded"]
    assert {e.correlation_id for e in h.events} == {"corr-1"}
    assert h.metric("daz_retry_success_total", operation_type="op") == 1
    assert h.metric("daz_retry_scheduled_total", operation_type="op") == 1
    assert h.metric("daz_retry_duration_seconds_count", operation_type="op", outcome="success") == 1


async def test_always_failing_item_backs_off_then_dead_letters_with_last_error(h: Harness) -> None:
    calls: list[float] = []

    async def handler(item: QueueItem) -> None:
        calls.append(h.clock.monotonic())
        raise StoreUnavailable(f"db down #{len(calls)}")

    h.queue.register("op", handler)
    [item_id] = await h.queue.schedule(NewItem("op"))
    for _ in range(40):
        await h.advance(1)
    assert calls == [5.0, 15.0, 35.0]  # waits 5, then 10, then 20 seconds
    item = await h.store.get(item_id)
    assert (item.status, item.attempt) == ("dead_letter", 3)
    assert item.last_error == "gave up after 3 attempt(s): db down #3"
    assert names(h.events) == ["retry.scheduled", "retry.rescheduled", "retry.rescheduled",
                               "retry.dead_lettered"]
    assert h.metric("daz_retry_failure_total", operation_type="op") == 3
    assert h.metric("daz_retry_dead_letter_total", operation_type="op") == 1


async def test_non_retryable_error_dead_letters_at_once(h: Harness) -> None:
    async def handler(item: QueueItem) -> None:
        raise DazError("malformed", retryable=False)

    h.queue.register("op", handler)
    [item_id] = await h.queue.schedule(NewItem("op"))
    await h.advance(6)
    item = await h.store.get(item_id)
    assert (item.status, item.last_error, item.attempt) == ("dead_letter", "non-retryable: malformed", 1)


async def test_attempt_timeout_is_a_retryable_failure() -> None:
    store, clock, metrics, _ = make_harness()
    async with Running(store, clock, metrics, config(timeout_seconds=0.05)) as h:
        async def slow(item: QueueItem) -> None:
            await asyncio.sleep(10)

        h.queue.register("op", slow)
        [item_id] = await h.queue.schedule(NewItem("op"))
        await h.advance(5)
        for _ in range(100):  # the timeout runs on the event loop's clock: bounded real wait
            if (await h.store.get(item_id)).attempt == 1:
                break
            await asyncio.sleep(0.01)
        item = await h.store.get(item_id)
        assert (item.status, item.attempt, item.last_error) == ("pending", 1, "attempt timed out after 0.05s")


async def test_scheduled_future_item_wakes_worker_at_due_time_not_at_poll(h: Harness) -> None:
    ran_at: list[float] = []

    async def handler(item: QueueItem) -> None:
        ran_at.append(h.clock.monotonic())

    h.queue.register("op", handler)
    await h.advance(1)
    await h.store.schedule([NewItem("op", retry_after=h.clock.now() + timedelta(seconds=3))])
    for _ in range(30):
        await h.advance(0.25)
    assert ran_at == [4.0]


class _Gate:
    def __init__(self, defer: float | None) -> None:
        self.defer = defer
        self.records: list[tuple[int, str | None, BaseException | None]] = []

    def before_attempt(self, item: QueueItem, policy: RetryPolicy) -> float | None:
        return self.defer

    def record(self, item: QueueItem, policy: RetryPolicy, outcome: BaseException | None,
               duration: float) -> None:
        self.records.append((item.id, policy.breaker, outcome))


async def test_gate_defers_without_charging_an_attempt_then_lets_through() -> None:
    store, clock, metrics, _ = make_harness()
    cfg = config(breaker="database")  # type: ignore[arg-type]
    gate = _Gate(defer=7.0)
    async with Running(store, clock, metrics, cfg, gate) as h:
        ran: list[int] = []

        async def handler(item: QueueItem) -> None:
            ran.append(item.id)

        h.queue.register("op", handler)
        [item_id] = await h.queue.schedule(NewItem("op"))
        await h.advance(5)
        item = await h.store.get(item_id)
        assert (item.status, item.attempt, item.deferred_by, ran) == ("pending", 0, "database", [])
        assert "retry.deferred" in names(h.events)
        gate.defer = None
        await h.advance(7)
        assert ran == [item_id]
        assert gate.records == [(item_id, "database", None)]
        assert (await h.store.get(item_id)).status == "completed"


async def test_gate_permit_is_settled_when_shutdown_cancels_the_attempt() -> None:
    store, clock, metrics, _ = make_harness()
    cfg = config(breaker="database")  # type: ignore[arg-type]
    gate = _Gate(defer=None)
    started = asyncio.Event()
    queue = RetryQueue(store, cfg, None, metrics, clock, random.Random(1), gate)  # type: ignore[arg-type]

    async def hangs(item: QueueItem) -> None:
        started.set()
        await asyncio.Event().wait()

    queue.register("op", hangs)
    [item_id] = await store.schedule([NewItem("op")])
    with pytest.raises(asyncio.CancelledError):  # noqa: PT012 - the cancellation is the point
        async with asyncio.TaskGroup() as group:
            task = group.create_task(queue.run(asyncio.Event()), name="test.queue")
            await asyncio.wait_for(started.wait(), 5)
            assert gate.records == []
            task.cancel()
            await asyncio.wait_for(asyncio.shield(asyncio.wait({task})), 5)
            raise asyncio.CancelledError
    [(recorded_id, breaker, outcome)] = gate.records
    assert (recorded_id, breaker) == (item_id, "database")
    assert isinstance(outcome, asyncio.CancelledError)  # the breaker hands such a permit back uncounted


async def test_no_bus_responder_hands_the_gate_permit_back_uncounted() -> None:
    store, clock, metrics, _ = make_harness()
    gate = _Gate(defer=None)
    async with Running(store, clock, metrics, config(), gate) as h:  # a bus, but no responder
        [item_id] = await h.queue.schedule(NewItem("nobody"))
        await h.advance(3)
        assert h.queue.stats.get("no_handler") == 1
        [(recorded_id, _, outcome)] = gate.records
        assert recorded_id == item_id
        assert isinstance(outcome, asyncio.CancelledError)


async def test_no_handler_and_no_bus_never_asks_the_gate() -> None:
    store, clock, metrics, cfg = make_harness()
    asked: list[int] = []

    class _Counting(_Gate):
        def before_attempt(self, item: QueueItem, policy: RetryPolicy) -> float | None:
            asked.append(item.id)
            return None

    gate = _Counting(defer=None)
    queue = RetryQueue(store, cfg, None, metrics, clock, random.Random(1), gate)  # type: ignore[arg-type]
    [item_id] = await store.schedule([NewItem("nobody")])
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(queue.run(stopping), name="test.queue")
        await settle()
        stopping.set()
    assert queue.stats.get("no_handler") == 1
    assert (asked, gate.records) == ([], [])
    item = await store.get(item_id)
    assert (item.status, item.attempt) == ("pending", 0)


class _NoHeartbeatStore(InMemoryStore):
    """A worker whose heartbeats never land: what a paused (SIGSTOPped) process looks like."""

    async def heartbeat(self, id: int, fence: int, lease_seconds: float) -> bool:  # noqa: A002
        return True


async def test_late_result_after_reclaim_is_rejected_and_counted() -> None:
    store, clock, metrics, cfg = make_harness(_NoHeartbeatStore)
    async with Running(store, clock, metrics, cfg) as h:
        fences: list[int] = []

        async def handler(item: QueueItem) -> None:
            fences.append(item.fence)
            if item.fence == 1:
                await h.clock.advance(LEASE + 1)  # the lease runs out while this attempt "hangs"
                for _ in range(100):  # the other worker reclaims and finishes meanwhile
                    if len(fences) == 2:
                        break
                    await settle(10)

        h.queue.register("op", handler)
        [item_id] = await h.queue.schedule(NewItem("op"))
        await h.advance(5)
        assert fences == [1, 2]
        item = await h.store.get(item_id)
        assert (item.status, item.fence) == ("completed", 2)
        assert h.metric("daz_retry_stale_fence_total") == 1
        assert h.metric("daz_retry_reclaimed_total") == 1
        assert h.queue.stats.get("stale_fence") == 1
        assert h.metric("daz_retry_success_total", operation_type="op") == 1


async def test_expired_claim_of_a_crashed_worker_is_reclaimed_and_counted(h: Harness) -> None:
    ran: list[int] = []

    async def handler(item: QueueItem) -> None:
        ran.append(item.fence)

    await h.store.schedule([NewItem("other")])
    [crashed] = await h.store.claim_due(1, LEASE, "crashed-worker")
    h.queue.register("other", handler)
    await h.advance(LEASE - 1)
    assert ran == []
    for _ in range(10):
        await h.advance(1)
    assert ran == [crashed.fence + 1]
    assert h.metric("daz_retry_reclaimed_total") == 1
    assert "retry.reclaimed" in names(h.events)


async def test_bus_responder_handles_items_without_a_direct_handler(h: Harness) -> None:
    got: list[int] = []

    async def responder(event: Event) -> None:
        got.append(event.data.id)

    h.bus.respond("retry.handle.plugin_op", responder)
    [item_id] = await h.queue.schedule(NewItem("plugin_op"))
    await h.advance(3)
    assert got == [item_id]
    assert (await h.store.get(item_id)).status == "completed"


async def test_item_nobody_handles_waits_without_losing_attempts(h: Harness) -> None:
    [item_id] = await h.queue.schedule(NewItem("nobody"))
    await h.advance(3)
    item = await h.store.get(item_id)
    assert (item.status, item.attempt) == ("pending", 0)
    assert item.retry_after == item.updated_at + timedelta(seconds=10)  # no_handler_delay_seconds
    assert h.queue.stats.get("no_handler") == 1


async def test_schedule_falls_back_while_store_is_down(h: Harness) -> None:
    spooled: list[list[NewItem]] = []

    async def spool(items: list[NewItem]) -> None:
        spooled.append(items)

    h.store.available = False
    with pytest.raises(StoreUnavailable):
        await h.queue.schedule(NewItem("op"))
    h.queue.set_fallback(spool)
    assert await h.queue.schedule(NewItem("op", correlation_id="c9")) == []
    [[item]] = spooled
    assert (item.correlation_id, item.max_retries, item.timeout_seconds) == ("c9", 3, 20)
    assert item.retry_after == h.clock.now() + timedelta(seconds=5)
    h.store.available = True


class _SlowCompleteStore(InMemoryStore):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def complete_many(self, claims: Sequence[tuple[int, int]]) -> list[int]:
        self.entered.set()
        await self.release.wait()
        return await super().complete_many(claims)


async def test_outcome_is_persisted_even_when_the_worker_is_cancelled_mid_write() -> None:
    clock = FakeClock()
    store = _SlowCompleteStore(clock)
    queue = RetryQueue(store, config(), None, DazMetrics(), clock, random.Random(1))

    async def handler(item: QueueItem) -> None:
        return None

    queue.register("op", handler)
    [item_id] = await store.schedule([NewItem("op")])
    stopping = asyncio.Event()
    with pytest.raises(asyncio.CancelledError):  # noqa: PT012 - the cancellation is the point
        async with asyncio.TaskGroup() as group:
            task = group.create_task(queue.run(stopping), name="test.queue")
            await asyncio.wait_for(store.entered.wait(), 5)
            task.cancel()
            await settle()
            assert not task.done()  # still finishing the shielded write
            store.release.set()
            await asyncio.wait_for(asyncio.shield(asyncio.wait({task})), 5)
            raise asyncio.CancelledError
    assert (await store.get(item_id)).status == "completed"


async def test_gauges_reflect_queue_depth(h: Harness) -> None:
    await h.store.schedule([NewItem("op"), NewItem("op")])
    await h.queue.refresh_gauges()
    assert h.metric("daz_retry_queue_depth", status="pending") == 2
    assert h.metric("daz_retry_queue_depth", status="dead_letter") == 0


async def test_batch_timeout_cancels_only_the_slow_attempt() -> None:
    store, clock, metrics, _ = make_harness()
    async with Running(store, clock, metrics, config(timeout_seconds=0.05)) as h:
        async def handler(item: QueueItem) -> None:
            if item.payload["slow"]:
                await asyncio.sleep(10)

        h.queue.register("op", handler)
        ids = await h.store.schedule(
            [NewItem("op", {"slow": i == 1}, timeout_seconds=0.05) for i in range(3)]
        )
        await h.advance(0)
        for _ in range(100):  # batch deadlines run on the event loop's clock: bounded real wait
            if (await h.store.get(ids[1])).status == "pending":
                break
            await asyncio.sleep(0.01)
        states = [(await h.store.get(i)).status for i in ids]
        assert states == ["completed", "pending", "completed"]
        slow = await h.store.get(ids[1])
        assert (slow.attempt, slow.last_error) == (1, "attempt timed out after 0.05s")


# the local hand-off --------------------------------------------------------------------------


class _CountingStore(InMemoryStore):
    """Counts claims, and can hold ``schedule_claimed`` mid-insert."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.claims = 0
        self.hold: asyncio.Event | None = None
        self.inserting = asyncio.Event()

    async def claim_due(
        self, batch: int, lease_seconds: float, owner: str, **filters: object
    ) -> list[QueueItem]:
        self.claims += 1
        return await super().claim_due(batch, lease_seconds, owner, **filters)  # type: ignore[arg-type]

    async def schedule_claimed(
        self, items: Sequence[NewItem], owner: str, lease_seconds: float
    ) -> ClaimedSchedule:
        self.inserting.set()
        if self.hold is not None:
            await self.hold.wait()
        return await super().schedule_claimed(items, owner, lease_seconds)


async def test_due_item_is_handed_to_an_idle_worker_without_a_claim() -> None:
    store, clock, metrics, cfg = make_harness(_CountingStore)
    assert isinstance(store, _CountingStore)
    async with Running(store, clock, metrics, cfg) as h:
        seen: list[tuple[QueueItem, int]] = []

        async def handler(item: QueueItem) -> None:
            seen.append((item, store.claims))

        h.queue.register("op", handler)
        claims_before = store.claims
        due_now = NewItem("op", {"x": 1}, retry_after=clock.now(), correlation_id="c1")
        [item_id] = await h.queue.schedule(due_now)
        row = await store.get(item_id)  # before any handler ran: committed and fenced already
        assert (row.status, row.fence, row.attempt) == ("processing", 1, 0)
        assert row.lease_owner in {w.owner for w in h.queue.workers}
        await settle()
        [(item, claims_at_start)] = seen
        assert claims_at_start == claims_before  # no claim round-trip before the handler started
        assert (item.id, item.fence, item.payload, item.correlation_id) == (item_id, 1, {"x": 1}, "c1")
        await h.advance(0)
        assert (await store.get(item_id)).status == "completed"
        assert h.queue.stats["handed_off"] == 1
        assert names(h.events) == ["retry.scheduled", "retry.succeeded"]
        assert h.metric("daz_retry_success_total", operation_type="op") == 1


async def test_items_take_the_normal_path_when_no_worker_is_idle_or_they_are_not_eligible() -> None:
    store, clock, metrics, cfg = make_harness(_CountingStore)
    async with Running(store, clock, metrics, cfg) as h:
        release = asyncio.Event()
        ran: list[int] = []

        async def blocks(item: QueueItem) -> None:
            ran.append(item.id)
            await release.wait()

        h.queue.register("op", blocks)
        h.queue.set_targets(["lobby"])

        async def status(item_id: int) -> tuple[str, int]:
            row = await store.get(item_id)
            return row.status, row.fence

        now = clock.now()
        # Not eligible while workers are idle: due later, no local handler, a target owned elsewhere.
        [later] = await h.queue.schedule(NewItem("op"))
        [unhandled] = await h.queue.schedule(NewItem("nobody", retry_after=now))
        [elsewhere] = await h.queue.schedule(NewItem("op", target="other", retry_after=now))
        assert [await status(i) for i in (later, unhandled, elsewhere)] == [("pending", 0)] * 3
        assert "handed_off" not in h.queue.stats
        await h.advance(0)  # the normal path woke a worker; let it find nothing and go idle again
        # Both workers busy with hand-offs: the third due item is inserted pending for a claim.
        busy = [(await h.queue.schedule(NewItem("op", target="lobby", retry_after=now)))[0] for _ in range(2)]
        await settle()
        assert sorted(ran) == sorted(busy)
        assert h.queue.stats["handed_off"] == 2
        [third] = await h.queue.schedule(NewItem("op", retry_after=now))
        assert await status(third) == ("pending", 0)
        claims = store.claims
        release.set()
        await h.advance(0)
        assert third in ran
        assert store.claims > claims
        assert await status(third) == ("completed", 1)
        assert [await status(i) for i in busy] == [("completed", 1)] * 2


async def test_handed_off_item_still_goes_through_the_gate() -> None:
    store, clock, metrics, _ = make_harness()
    gate = _Gate(defer=7.0)
    async with Running(store, clock, metrics, config(breaker="database"), gate) as h:  # type: ignore[arg-type]
        ran: list[int] = []

        async def handler(item: QueueItem) -> None:
            ran.append(item.id)

        h.queue.register("op", handler)
        [item_id] = await h.queue.schedule(NewItem("op", retry_after=clock.now()))
        await h.advance(0)
        item = await store.get(item_id)
        assert (item.status, item.attempt, item.deferred_by, ran) == ("pending", 0, "database", [])
        assert h.queue.stats["handed_off"] == 1
        gate.defer = None
        await h.advance(7)
        assert ran == [item_id]
        assert gate.records == [(item_id, "database", None)]
        assert (await store.get(item_id)).status == "completed"


async def test_duplicate_key_is_not_handed_off_twice() -> None:
    store, clock, metrics, cfg = make_harness()
    async with Running(store, clock, metrics, cfg) as h:
        ran: list[int] = []

        async def handler(item: QueueItem) -> None:
            ran.append(item.id)

        h.queue.register("op", handler)
        first = await h.queue.schedule(NewItem("op", idempotency_key="k", retry_after=clock.now()))
        await h.advance(0)
        second = await h.queue.schedule(NewItem("op", idempotency_key="k", retry_after=clock.now()))
        await h.advance(0)
        assert first == second == ran
        assert h.queue.stats["handed_off"] == 1


async def test_handoff_to_a_worker_that_stopped_meanwhile_is_made_claimable_again() -> None:
    store, clock, metrics, cfg = make_harness(_CountingStore)
    assert isinstance(store, _CountingStore)
    store.hold = asyncio.Event()
    ran: list[int] = []

    async def handler(item: QueueItem) -> None:
        ran.append(item.id)

    async with Running(store, clock, metrics, cfg) as h:
        h.queue.register("op", handler)
        async with asyncio.TaskGroup() as group:
            scheduling = group.create_task(h.queue.schedule(NewItem("op", retry_after=clock.now())), name="t")
            await asyncio.wait_for(store.inserting.wait(), 5)
            h.stopping.set()
            await settle()
            assert all(not w.available for w in h.queue.workers)
            store.hold.set()
        [item_id] = scheduling.result()
    item = await store.get(item_id)
    assert (item.status, item.fence, item.attempt, ran) == ("pending", 1, 0, [])
    assert [c.id for c in await store.claim_due(1, LEASE, "next")] == [item_id]


async def test_handoff_falls_back_to_the_spool_while_the_store_is_down(h: Harness) -> None:
    spooled: list[list[NewItem]] = []

    async def spool(items: list[NewItem]) -> None:
        spooled.append(items)

    async def handler(item: QueueItem) -> None:
        return None

    h.queue.register("op", handler)
    h.queue.set_fallback(spool)
    h.store.available = False
    assert await h.queue.schedule(NewItem("op", retry_after=h.clock.now())) == []
    assert len(spooled) == 1
    assert all(w.reserved == 0 for w in h.queue.workers)
    h.store.available = True
    await settle()
    assert any(w.available for w in h.queue.workers)
