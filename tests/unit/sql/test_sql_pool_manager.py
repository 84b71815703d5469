"""PoolManager I/O paths with fake connections and a FakeClock: no database, milliseconds."""

from __future__ import annotations

import asyncio
import random

import pytest

from daz.config import PoolConfig
from daz.db.pool import PoolManager
from daz.errors import SqlError
from daz.metrics import DazMetrics
from daz.testing.clock import FakeClock


class FakeConn:
    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False
        self.alive = True
        self.pings = 0

    def is_closed(self) -> bool:
        return self.closed

    async def fetchval(self, sql: str) -> int:
        self.pings += 1
        if not self.alive:
            raise ConnectionResetError(104, "reset by peer")
        return 1

    async def close(self) -> None:
        self.closed = True

    def terminate(self) -> None:
        self.closed = True


class Harness:
    def __init__(self, **config: object) -> None:
        self.clock = FakeClock()
        self.metrics = DazMetrics()
        self.opened: list[FakeConn] = []
        self.pool = PoolManager(self.connect, PoolConfig(**config), metrics=self.metrics,  # type: ignore[arg-type]
                                clock=self.clock, rng=random.Random(1))

    async def connect(self) -> FakeConn:
        conn = FakeConn(len(self.opened) + 1)
        self.opened.append(conn)
        return conn

    def evictions(self, reason: str) -> float:
        return self.metrics.registry.get_sample_value("daz_pool_evictions_total", {"reason": reason}) or 0.0


async def test_warm_up_opens_min_size() -> None:
    h = Harness(min_size=3, max_size=5)
    await h.pool.start(require=True)
    assert h.pool.size == 3
    assert h.metrics.registry.get_sample_value("daz_pool_size") == 3


async def test_acquire_times_out_with_a_retryable_error_when_exhausted() -> None:
    h = Harness(min_size=1, max_size=1, acquire_timeout_seconds=0.05)
    await h.pool.start(require=True)
    async with h.pool.acquire():
        with pytest.raises(SqlError, match="no database connection free") as info:
            async with h.pool.acquire():
                pass
    assert info.value.retryable is True
    async with h.pool.acquire() as conn:  # released: usable again
        assert conn.raw is h.opened[0]


async def test_released_connection_is_handed_to_a_waiter() -> None:
    h = Harness(min_size=1, max_size=1, acquire_timeout_seconds=5)
    await h.pool.start(require=True)
    order: list[str] = []

    async def second() -> None:
        async with h.pool.acquire() as conn:
            order.append(f"second:{conn.raw.n}")

    async with asyncio.TaskGroup() as tg:
        async with h.pool.acquire():
            tg.create_task(second(), name="test.second")
            for _ in range(50):  # bounded: until the second caller is queued
                if h.metrics.registry.get_sample_value("daz_pool_waiting") == 1:
                    break
                await asyncio.sleep(0)
            order.append("first")
    assert order == ["first", "second:1"]


async def test_expired_connection_is_replaced_at_checkout() -> None:
    h = Harness(min_size=1, max_size=2, max_lifetime_seconds=100, lifetime_jitter=0.0)
    await h.pool.start(require=True)
    await h.clock.advance(101)
    async with h.pool.acquire() as conn:
        assert conn.raw.n == 2
    assert h.opened[0].closed
    assert h.evictions("lifetime") == 1


async def test_dead_idle_connection_fails_validation_and_caller_gets_a_fresh_one() -> None:
    h = Harness(min_size=2, max_size=4, validation_idle_seconds=1.0)
    await h.pool.start(require=True)
    for conn in h.opened:
        conn.alive = False
    await h.clock.advance(2)
    async with h.pool.acquire() as conn:
        assert conn.raw.n == 3
    assert h.evictions("validation") == 2


async def test_recently_used_connection_is_not_pinged() -> None:
    h = Harness(min_size=1, max_size=1, validation_idle_seconds=1.0)
    await h.pool.start(require=True)
    async with h.pool.acquire():
        pass
    async with h.pool.acquire():
        pass
    assert h.opened[0].pings == 0


async def test_keepalive_evicts_dead_idle_connections_and_plan_restores_min_size() -> None:
    h = Harness(min_size=2, max_size=4, keepalive_interval_seconds=10)
    await h.pool.start(require=True)
    h.opened[0].alive = False
    await h.clock.advance(11)
    await h.pool.maintain()
    assert h.evictions("keepalive") == 1
    assert h.pool.size == 2
    assert [c.closed for c in h.opened] == [True, False, False]


async def test_unhealthy_connection_is_evicted_after_its_replacement_opened() -> None:
    h = Harness(min_size=1, max_size=2, health_score_threshold=0.3)
    await h.pool.start(require=True)
    with pytest.raises(SqlError):
        async with h.pool.acquire():
            raise SqlError("timeout", sqlstate="57014", retryable=True)
    with pytest.raises(SqlError):
        async with h.pool.acquire():
            raise SqlError("timeout", sqlstate="57014", retryable=True)
    decided = await h.pool.maintain()  # 0.5^2 = 0.25 < 0.3
    assert decided.evict == ((1, "unhealthy"),)
    assert decided.open == 1
    assert h.evictions("unhealthy") == 1
    assert h.pool.size == 1
    assert h.opened[1].closed is False


async def test_connection_loss_discards_and_other_errors_keep_the_connection() -> None:
    h = Harness(min_size=1, max_size=2)
    await h.pool.start(require=True)
    with pytest.raises(ValueError, match="caller bug"):
        async with h.pool.acquire():
            raise ValueError("caller bug")
    assert h.pool.size == 1
    with pytest.raises(ConnectionResetError):
        async with h.pool.acquire():
            raise ConnectionResetError(104, "reset")
    assert h.pool.size == 0
    assert h.evictions("broken") == 1


async def test_in_use_connection_marked_for_eviction_retires_on_release() -> None:
    h = Harness(min_size=1, max_size=2, max_lifetime_seconds=100, lifetime_jitter=0.0)
    await h.pool.start(require=True)
    async with h.pool.acquire():
        await h.clock.advance(101)
        await h.pool.maintain()  # opens a replacement, cannot close the busy one
        assert not h.opened[0].closed
    assert h.opened[0].closed
    assert h.evictions("retired") == 1


async def test_degraded_start_and_required_start() -> None:
    async def refuse() -> FakeConn:
        raise ConnectionRefusedError(111, "refused")

    pool = PoolManager(refuse, PoolConfig(min_size=2), metrics=DazMetrics(),  # type: ignore[arg-type]
                       clock=FakeClock())
    await pool.start(require=False)
    assert pool.size == 0
    with pytest.raises(SqlError, match="unreachable at start-up"):
        await pool.start(require=True)


async def test_run_replans_on_its_interval_and_stops_promptly() -> None:
    h = Harness(min_size=2, max_size=4, resize_interval_seconds=5)
    stopping = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(h.pool.run(stopping), name="test.pool")
        await h.clock.advance(5)  # degraded start (never started): the first plan opens min_size
        assert h.pool.size == 2
        stopping.set()
    await h.pool.close()
    assert all(c.closed for c in h.opened)
