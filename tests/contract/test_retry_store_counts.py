"""``dead_letters_since`` on every RetryStore: counted by the store, over the same three backends.

The fixtures are test_retry_store.py's (in-memory, SQLite in tmp_path, PostgreSQL in its own schema),
imported rather than copied, so this suite runs on exactly the stores the main contract suite does.
"""

from __future__ import annotations

from datetime import timedelta

from test_retry_store import LEASE, clock, store, store_url

from daz.store import NewItem, RetryStore
from daz.testing import FakeClock

__all__ = ["clock", "store", "store_url"]


async def _dead_letter(store: RetryStore, count: int, reason: str) -> list[int]:
    ids = await store.schedule([NewItem("op", {"i": i}) for i in range(count)])
    claimed = await store.claim_due(count, LEASE, "w1")
    assert sorted(c.id for c in claimed) == sorted(ids)
    for item in claimed:
        await store.dead_letter(item.id, item.fence, reason)
    return ids


async def test_dead_letters_since_counts_only_recent_ones(store: RetryStore, clock: FakeClock) -> None:
    start = clock.now()
    assert await store.dead_letters_since(start - timedelta(days=1)) == 0
    early = await _dead_letter(store, 2, "early")
    await clock.advance(7200)
    await _dead_letter(store, 3, "late")
    # neither a completed item nor one still pending counts
    [done] = await store.schedule([NewItem("op", {"done": True})])
    [claim] = await store.claim_due(1, LEASE, "w1")
    await store.complete(claim.id, claim.fence)
    assert claim.id == done
    await store.schedule([NewItem("op", {"pending": True})])

    now = clock.now()
    assert await store.dead_letters_since(now - timedelta(hours=1)) == 3
    assert await store.dead_letters_since(start) == 5
    assert await store.dead_letters_since(now + timedelta(seconds=1)) == 0
    # the bound is inclusive: items dead-lettered exactly at ``since`` count
    assert await store.dead_letters_since(now) == 3

    # a requeued dead letter is no longer one
    assert await store.requeue(ids=[early[0]]) == 1
    assert await store.dead_letters_since(start) == 4


async def test_dead_letters_since_is_not_capped(store: RetryStore, clock: FakeClock) -> None:
    # The health check used to list 1,000 rows and count them; the store's count has no cap.
    since = clock.now()
    await _dead_letter(store, 1005, "bulk")
    assert await store.dead_letters_since(since) == 1005
