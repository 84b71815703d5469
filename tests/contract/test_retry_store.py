"""One behaviour suite for every RetryStore: in-memory, SQLite (tmp_path) and PostgreSQL (pg_dsn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daz.errors import ItemNotFound, StaleFence
from daz.store import NewItem, RetryStore, open_store
from daz.testing import FakeClock, InMemoryStore

LEASE = 30.0


def _close(a: datetime | None, b: datetime, tolerance: float = 0.001) -> bool:
    return a is not None and abs((a - b).total_seconds()) <= tolerance


@pytest.fixture
def clock() -> FakeClock:
    # Real "now" as the start, so the view's server-side age agrees with the store's clock.
    return FakeClock(wall_start=datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Sync on purpose: the shared pg fixtures must be resolved outside the running event loop.
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'q.db'}"
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[RetryStore]:
    if store_url == "memory":
        s: RetryStore = InMemoryStore(clock)
    else:
        s = await open_store(store_url, clock=clock, pool_min_size=1, pool_max_size=4)
    try:
        yield s
    finally:
        await s.close()


async def test_schedule_applies_defaults_and_roundtrips_payload(store: RetryStore, clock: FakeClock) -> None:
    payload = {"text": "héllo ✓", "nested": {"n": [1, 2.5, None, True]}}
    [item_id] = await store.schedule([NewItem("cytube_command", payload, target="lobby", event_type="chat")])
    item = await store.get(item_id)
    assert item.payload == payload
    assert (item.status, item.attempt, item.fence, item.target, item.event_type) == (
        "pending", 0, 0, "lobby", "chat")
    assert item.max_retries == 3
    assert item.timeout_seconds == 30.0
    assert item.correlation_id
    assert len(item.correlation_id) >= 16
    assert _close(item.retry_after, clock.now())
    assert item.lease_until is None
    assert item.lease_owner is None


async def test_ids_follow_input_order(store: RetryStore) -> None:
    ids = await store.schedule([NewItem("op", {"i": i}) for i in range(50)])
    assert len(set(ids)) == 50
    for i, item_id in enumerate(ids):
        assert (await store.get(item_id)).payload == {"i": i}


async def test_idempotency_key_dedupes_within_and_across_batches(store: RetryStore) -> None:
    first = await store.schedule([
        NewItem("op", {"v": 1}, idempotency_key="k1"),
        NewItem("op", {"v": 2}),
        NewItem("op", {"v": 3}, idempotency_key="k1"),
    ])
    assert first[0] == first[2]
    assert first[1] != first[0]
    again = await store.schedule([NewItem("op", {"v": 4}, idempotency_key="k1"),
                                  NewItem("op", {"v": 5}, idempotency_key="k2")])
    assert again[0] == first[0]
    assert (await store.get(first[0])).payload == {"v": 1}
    assert len(await store.list()) == 3


async def test_claims_only_due_items_in_priority_order(store: RetryStore, clock: FakeClock) -> None:
    later = clock.now() + timedelta(seconds=60)
    low, high, future = await store.schedule([
        NewItem("op", priority=0), NewItem("op", priority=5), NewItem("op", priority=9, retry_after=later)
    ])
    claimed = await store.claim_due(10, LEASE, "w1")
    assert [c.id for c in claimed] in ([high, low], [low, high])
    assert max(claimed, key=lambda c: c.priority).id == high
    assert all(c.status == "processing" and c.fence == 1 and c.lease_owner == "w1" for c in claimed)
    assert all(_close(c.lease_until, clock.now() + timedelta(seconds=LEASE)) for c in claimed)
    assert not any(c.reclaimed for c in claimed)
    assert await store.claim_due(10, LEASE, "w2") == []
    assert await store.complete_many([(c.id, c.fence) for c in claimed]) == []
    await clock.advance(60)
    assert [c.id for c in await store.claim_due(10, LEASE, "w2")] == [future]


async def test_batch_limit_and_priority_decides_who_is_claimed_first(store: RetryStore) -> None:
    ids = await store.schedule([NewItem("op", priority=i % 3) for i in range(9)])
    first = await store.claim_due(3, LEASE, "w")
    assert len(first) == 3
    assert all(c.priority == 2 for c in first)
    rest = await store.claim_due(100, LEASE, "w")
    assert sorted(c.id for c in first + rest) == sorted(ids)


async def test_expired_lease_is_reclaimed_and_old_fence_is_rejected(
    store: RetryStore, clock: FakeClock
) -> None:
    [item_id] = await store.schedule([NewItem("op")])
    [old] = await store.claim_due(1, LEASE, "crashed")
    await clock.advance(LEASE - 1)
    assert await store.claim_due(1, LEASE, "rescuer") == []
    await clock.advance(2)
    [new] = await store.claim_due(1, LEASE, "rescuer")
    assert new.id == item_id
    assert new.reclaimed
    assert new.fence == old.fence + 1
    assert new.lease_owner == "rescuer"
    with pytest.raises(StaleFence):
        await store.complete(item_id, old.fence)
    with pytest.raises(StaleFence):
        await store.reschedule(item_id, old.fence, clock.now(), "late")
    with pytest.raises(StaleFence):
        await store.dead_letter(item_id, old.fence, "late")
    assert not await store.heartbeat(item_id, old.fence, LEASE)
    await store.complete(item_id, new.fence)
    assert (await store.get(item_id)).status == "completed"
    with pytest.raises(StaleFence):
        await store.complete(item_id, new.fence)


async def test_heartbeat_keeps_the_lease(store: RetryStore, clock: FakeClock) -> None:
    await store.schedule([NewItem("op")])
    [c] = await store.claim_due(1, LEASE, "w")
    for _ in range(3):
        await clock.advance(LEASE - 5)
        assert await store.heartbeat(c.id, c.fence, LEASE)
    assert await store.claim_due(1, LEASE, "other") == []
    await clock.advance(LEASE + 1)
    assert [x.id for x in await store.claim_due(1, LEASE, "other")] == [c.id]


async def test_complete_many_reports_stale_fences(store: RetryStore, clock: FakeClock) -> None:
    await store.schedule([NewItem("op") for _ in range(4)])
    claimed = await store.claim_due(4, LEASE, "w")
    pairs = [(c.id, c.fence) for c in claimed]
    stale_pair = (pairs[0][0], pairs[0][1] + 7)
    assert await store.complete_many([stale_pair, *pairs[1:]]) == [pairs[0][0]]
    assert (await store.get(pairs[0][0])).status == "processing"
    assert {(await store.get(i)).status for i, _ in pairs[1:]} == {"completed"}
    assert await store.complete_many([]) == []


async def test_reschedule_counts_attempts_unless_deferred(store: RetryStore, clock: FakeClock) -> None:
    [item_id] = await store.schedule([NewItem("op")])
    [c] = await store.claim_due(1, LEASE, "w")
    at = clock.now() + timedelta(seconds=5)
    await store.reschedule(item_id, c.fence, at, "boom")
    item = await store.get(item_id)
    assert (item.status, item.attempt, item.last_error, item.lease_owner) == ("pending", 1, "boom", None)
    assert _close(item.retry_after, at)
    assert await store.claim_due(1, LEASE, "w") == []
    await clock.advance(5)
    [c] = await store.claim_due(1, LEASE, "w")
    await store.reschedule(item_id, c.fence, clock.now(), None, count_attempt=False, deferred_by="database")
    item = await store.get(item_id)
    assert (item.attempt, item.last_error, item.deferred_by) == (1, "boom", "database")


async def test_dead_letter_and_requeue(store: RetryStore, clock: FakeClock) -> None:
    ids = await store.schedule([NewItem("a"), NewItem("a"), NewItem("b")])
    for c in await store.claim_due(10, LEASE, "w"):
        await store.dead_letter(c.id, c.fence, f"gave up on {c.id}")
    dead = await store.list(status="dead_letter")
    assert sorted(d.id for d in dead) == sorted(ids)
    assert all(d.attempt == 1 and d.last_error == f"gave up on {d.id}" for d in dead)
    assert await store.requeue(ids=[ids[0]]) == 1
    assert await store.requeue(ids=[ids[0]]) == 0  # already pending: nothing to move
    assert await store.requeue(operation_type="b") == 1
    again = await store.get(ids[0])
    assert (again.status, again.attempt, again.last_error) == ("pending", 0, f"gave up on {ids[0]}")
    assert await store.requeue(all_dead=True) == 1
    assert len(await store.claim_due(10, LEASE, "w")) == 3


async def test_release_deferred_moves_at_most_limit(store: RetryStore, clock: FakeClock) -> None:
    await store.schedule([NewItem("sql_operation") for _ in range(5)])
    far = clock.now() + timedelta(hours=1)
    for c in await store.claim_due(5, LEASE, "w"):
        await store.reschedule(c.id, c.fence, far, None, count_attempt=False, deferred_by="database")
    assert await store.release_deferred("other", 10) == 0
    assert await store.release_deferred("database", 2) == 2
    assert len(await store.claim_due(10, LEASE, "w")) == 2
    assert await store.release_deferred("database", 10) == 3


async def test_ack_pending_only_touches_unclaimed_items(store: RetryStore) -> None:
    await store.schedule([NewItem("op", idempotency_key="line-1"), NewItem("op", idempotency_key="line-2")])
    assert await store.ack_pending("line-1")
    assert not await store.ack_pending("line-1")
    assert not await store.ack_pending("nope")
    [c] = await store.claim_due(5, LEASE, "w")
    assert c.idempotency_key == "line-2"
    assert not await store.ack_pending("line-2")


async def test_purge_and_cleanup_respect_age_and_status(store: RetryStore, clock: FakeClock) -> None:
    ids = await store.schedule([NewItem("op") for _ in range(3)])
    claimed = await store.claim_due(3, LEASE, "w")
    await store.complete(claimed[0].id, claimed[0].fence)
    await store.dead_letter(claimed[1].id, claimed[1].fence, "x")
    await store.reschedule(claimed[2].id, claimed[2].fence, clock.now(), "y")
    assert await store.purge(timedelta(days=7)) == 0
    await clock.advance(8 * 86400)
    assert await store.cleanup(timedelta(days=7)) == 1
    assert await store.purge(timedelta(days=7), status="pending") == 1
    assert await store.purge(timedelta(days=7)) == 1
    with pytest.raises(ItemNotFound):
        await store.get(ids[0])
    with pytest.raises(ValueError, match="unknown status"):
        await store.purge(timedelta(days=1), status="bogus")


async def test_stats_per_type_and_status(store: RetryStore, clock: FakeClock) -> None:
    await store.schedule([NewItem("a"), NewItem("a"), NewItem("b")])
    await clock.advance(10)
    [c] = await store.claim_due(1, LEASE, "w", operation_types=["b"])
    await store.reschedule(c.id, c.fence, clock.now(), "e")
    [c] = await store.claim_due(1, LEASE, "w", operation_types=["b"])
    await store.dead_letter(c.id, c.fence, "dead")
    rows = {(r.operation_type, r.status): r for r in await store.stats()}
    assert set(rows) == {("a", "pending"), ("b", "dead_letter")}
    assert rows[("a", "pending")].count == 2
    assert rows[("a", "pending")].oldest_pending_age_seconds == pytest.approx(10, abs=0.01)
    dead = rows[("b", "dead_letter")]
    assert (dead.count, dead.max_attempts, dead.avg_attempts, dead.oldest_pending_age_seconds) == (
        1, 2, 2.0, None)


async def test_list_filters_and_get_unknown(store: RetryStore) -> None:
    await store.schedule([NewItem("a"), NewItem("b"), NewItem("a")])
    assert [i.operation_type for i in await store.list(operation_type="a")] == ["a", "a"]
    assert len(await store.list(limit=2)) == 2
    assert await store.list(status="dead_letter") == []
    with pytest.raises(ValueError, match="unknown status"):
        await store.list(status="done")
    with pytest.raises(ItemNotFound):
        await store.get(999_999)


async def test_claim_filters_by_operation_type_and_target(store: RetryStore) -> None:
    ids = await store.schedule([
        NewItem("cytube_command", target="lobby"), NewItem("cytube_command", target="other"),
        NewItem("sql_operation"),
    ])
    got = await store.claim_due(10, LEASE, "w", targets=["lobby"])
    assert sorted(c.id for c in got) == sorted([ids[0], ids[2]])
    assert await store.claim_due(10, LEASE, "w", operation_types=["sql_operation"]) == []
    got = await store.claim_due(10, LEASE, "w", operation_types=["cytube_command"])
    assert [c.id for c in got] == [ids[1]]


async def test_next_due_at_covers_pending_and_leases(store: RetryStore, clock: FakeClock) -> None:
    assert await store.next_due_at() is None
    soon = clock.now() + timedelta(seconds=40)
    await store.schedule([NewItem("op", retry_after=soon), NewItem("op")])
    [c] = await store.claim_due(1, LEASE, "w")
    assert _close(await store.next_due_at(), c.lease_until or soon)
    await store.complete(c.id, c.fence)
    assert _close(await store.next_due_at(), soon)


async def test_wakeups_fire_on_schedule_and_requeue(store: RetryStore) -> None:
    woke = asyncio.Event()
    async with store.wakeups(woke.set):
        await asyncio.sleep(0.2 if store.backend == "postgres" else 0)  # LISTEN is established
        woke.clear()
        await store.schedule([NewItem("op")])
        await asyncio.wait_for(woke.wait(), 5)
        [c] = await store.claim_due(1, LEASE, "w")
        await store.dead_letter(c.id, c.fence, "x")
        woke.clear()
        await store.requeue(all_dead=True)
        await asyncio.wait_for(woke.wait(), 5)
    await store.ping()


async def test_schedule_claimed_inserts_rows_already_leased_to_the_owner(
    store: RetryStore, clock: FakeClock
) -> None:
    result = await store.schedule_claimed(
        [NewItem("op", {"i": 0}, idempotency_key="h0"), NewItem("op", {"i": 1}, target="lobby")], "w1", LEASE
    )
    assert len(result.ids) == 2
    assert [c.id for c in result.claimed] == result.ids
    for i, c in enumerate(result.claimed):
        assert c.payload == {"i": i}
        assert (c.status, c.lease_owner, c.fence, c.attempt, c.reclaimed) == ("processing", "w1", 1, 0, False)
        assert _close(c.lease_until, clock.now() + timedelta(seconds=LEASE))
        assert _close(c.retry_after, clock.now())
        stored = await store.get(c.id)
        assert (stored.status, stored.lease_owner, stored.fence) == ("processing", "w1", 1)
    assert result.claimed[0].idempotency_key == "h0"
    assert result.claimed[1].target == "lobby"
    # Nobody else can claim a handed-off row while its lease runs.
    assert await store.claim_due(10, LEASE, "w2") == []
    first, second = result.claimed
    with pytest.raises(StaleFence):
        await store.complete(first.id, first.fence + 1)
    assert await store.complete_many([(first.id, first.fence), (second.id, 0)]) == [second.id]
    assert (await store.get(first.id)).status == "completed"
    assert await store.heartbeat(second.id, second.fence, LEASE)
    await store.reschedule(second.id, second.fence, clock.now(), "boom")
    assert ((await store.get(second.id)).status, (await store.get(second.id)).attempt) == ("pending", 1)
    [again] = await store.claim_due(10, LEASE, "w2")
    assert (again.id, again.fence) == (second.id, 2)


async def test_schedule_claimed_row_is_reclaimed_after_a_crash(store: RetryStore, clock: FakeClock) -> None:
    [old] = (await store.schedule_claimed([NewItem("op")], "crashed", LEASE)).claimed
    await clock.advance(LEASE - 1)
    assert await store.claim_due(1, LEASE, "rescuer") == []
    await clock.advance(2)
    [new] = await store.claim_due(1, LEASE, "rescuer")
    assert (new.id, new.fence, new.lease_owner, new.reclaimed) == (old.id, 2, "rescuer", True)
    with pytest.raises(StaleFence):
        await store.complete(old.id, old.fence)
    assert not await store.heartbeat(old.id, old.fence, LEASE)
    await store.complete(new.id, new.fence)
    assert (await store.get(old.id)).status == "completed"


async def test_schedule_claimed_dedupes_idempotency_keys_without_claiming(store: RetryStore) -> None:
    [existing] = await store.schedule([NewItem("op", {"v": 0}, idempotency_key="dup")])
    result = await store.schedule_claimed([
        NewItem("op", {"v": 1}, idempotency_key="fresh"),
        NewItem("op", {"v": 2}, idempotency_key="dup"),
        NewItem("op", {"v": 3}, idempotency_key="fresh"),
    ], "w1", LEASE)
    assert result.ids[1] == existing
    assert result.ids[0] == result.ids[2] != existing
    assert [(c.id, c.payload) for c in result.claimed] == [(result.ids[0], {"v": 1})]
    untouched = await store.get(existing)
    assert (untouched.status, untouched.fence, untouched.lease_owner, untouched.payload) == (
        "pending", 0, None, {"v": 0})
    again = await store.schedule_claimed([NewItem("op", idempotency_key="fresh")], "w2", LEASE)
    assert (again.ids, again.claimed) == ([result.ids[0]], [])
    assert (await store.get(result.ids[0])).lease_owner == "w1"
    assert len(await store.list()) == 2
    assert await store.schedule_claimed([], "w1", LEASE) == type(again)([], [])


async def test_wakeups_fire_when_deferred_items_are_released(store: RetryStore, clock: FakeClock) -> None:
    # The app relies on this: the retry queue hears of items a closed breaker released through the
    # store's wake-ups (as for a schedule), so the breaker gate is not wired to the queue itself.
    await store.schedule([NewItem("sql_operation")])
    [c] = await store.claim_due(1, LEASE, "w")
    await store.reschedule(c.id, c.fence, clock.now() + timedelta(hours=1), None, count_attempt=False,
                           deferred_by="database")
    woke = asyncio.Event()
    async with store.wakeups(woke.set):
        await asyncio.sleep(0.2 if store.backend == "postgres" else 0)  # LISTEN is established
        woke.clear()
        assert await store.release_deferred("other", 10) == 0
        assert await store.release_deferred("database", 10) == 1
        await asyncio.wait_for(woke.wait(), 5)
