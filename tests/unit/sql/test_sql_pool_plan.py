"""The pool's pure decisions: health score and plan()."""

from __future__ import annotations

from daz.config import PoolConfig
from daz.db.pool import (
    ConnectionStats,
    ConnectionView,
    PoolObservations,
    health_score,
    plan,
)

CONFIG = PoolConfig(min_size=2, max_size=10, max_lifetime_seconds=100.0, health_score_threshold=0.3)


def _stats(**kw: float) -> ConnectionStats:
    return ConnectionStats(conn_id=1, created_at=kw.get("created", 0.0), expires_at=100.0, last_used=0.0,
                           ewma_latency=kw.get("latency", 0.0))


def test_fresh_fast_connection_scores_one() -> None:
    assert health_score(_stats(), now=0.0, max_lifetime_seconds=100.0) == 1.0


def test_latency_errors_and_age_each_lower_the_score() -> None:
    base = health_score(_stats(), 10.0, 100.0)
    slow = health_score(_stats(latency=0.25), 10.0, 100.0)
    assert abs(slow - base / 2) < 1e-9  # the reference latency halves the latency factor
    erring = _stats()
    erring.record_error(9.0)
    erring.record_error(9.5)
    assert abs(health_score(erring, 10.0, 100.0) - base / 4) < 1e-9
    assert health_score(_stats(), 100.0, 100.0) == 0.5  # at max lifetime
    # errors older than the window are forgotten
    assert health_score(erring, 200.0, 1e9) > 0.99


def test_ewma_latency_moves_towards_new_samples() -> None:
    stats = _stats()
    stats.record_latency(1.0)
    assert stats.ewma_latency == 1.0
    stats.record_latency(0.0)
    assert abs(stats.ewma_latency - 0.8) < 1e-9


def _views(n: int, *, idle: bool = True, score: float = 1.0) -> tuple[ConnectionView, ...]:
    return tuple(ConnectionView(conn_id=i, idle=idle, score=score, expired=False) for i in range(1, n + 1))


def test_waiting_callers_grow_the_pool_up_to_max() -> None:
    obs = PoolObservations(size=4, in_use=4, opening=0, in_use_peak=4, waiting_peak=3,
                           mean_wait_seconds=0.05, connections=_views(4, idle=False))
    decided = plan(obs, CONFIG)
    assert (decided.target_size, decided.open, decided.evict) == (7, 3, ())
    crowded = PoolObservations(size=9, in_use=9, opening=0, in_use_peak=9, waiting_peak=20,
                               mean_wait_seconds=1.0, connections=_views(9, idle=False))
    assert plan(crowded, CONFIG).target_size == 10


def test_idle_pool_shrinks_gradually_to_min() -> None:
    size = 10
    sizes = []
    for _ in range(6):
        obs = PoolObservations(size=size, in_use=0, opening=0, in_use_peak=0, waiting_peak=0,
                               mean_wait_seconds=0.0, connections=_views(size))
        decided = plan(obs, CONFIG)
        assert all(reason == "shrink" for _, reason in decided.evict)
        size -= len(decided.evict)
        sizes.append(size)
    assert sizes == [5, 3, 2, 2, 2, 2]


def test_busy_pool_keeps_its_size() -> None:
    obs = PoolObservations(size=6, in_use=5, opening=0, in_use_peak=5, waiting_peak=0,
                           mean_wait_seconds=0.0, connections=_views(6))
    decided = plan(obs, CONFIG)
    assert (decided.target_size, decided.open, decided.evict) == (6, 0, ())


def test_unhealthy_and_expired_connections_are_evicted_and_replaced() -> None:
    views = (
        ConnectionView(1, idle=True, score=0.1, expired=False),
        ConnectionView(2, idle=True, score=0.9, expired=True),
        ConnectionView(3, idle=False, score=0.9, expired=False),
    )
    obs = PoolObservations(size=3, in_use=1, opening=0, in_use_peak=2, waiting_peak=0,
                           mean_wait_seconds=0.0, connections=views)
    decided = plan(obs, CONFIG)
    assert set(decided.evict) == {(1, "unhealthy"), (2, "lifetime")}
    assert decided.open == decided.target_size - 1  # pre-warmed replacements up to target


def test_below_min_size_opens_connections() -> None:
    obs = PoolObservations(size=0, in_use=0, opening=0, in_use_peak=0, waiting_peak=0, mean_wait_seconds=0.0)
    assert plan(obs, CONFIG).open == 2
    opening = PoolObservations(size=0, in_use=0, opening=1, in_use_peak=0, waiting_peak=0,
                               mean_wait_seconds=0.0)
    assert plan(opening, CONFIG).open == 1
