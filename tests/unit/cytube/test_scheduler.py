"""Per-server admission: the token bucket, socket slots, guest turns (pure, then under FakeClock)."""

from __future__ import annotations

import asyncio

import pytest

from daz.config import CytubeConfig, ServerLimitsConfig
from daz.cytube.admission import Admission, ServerGate
from daz.cytube.scheduler import ServerLedger, TokenBucket, priority, server_key
from daz.testing.clock import FakeClock

CYTUBE = ServerLimitsConfig(token_margin_seconds=0.0)


def test_server_key_is_host_and_port_with_scheme_defaults() -> None:
    assert server_key("https://Cytu.be") == "cytu.be:443"
    assert server_key("http://127.0.0.1:8880/") == "127.0.0.1:8880"
    assert server_key("http://example.org") == "example.org:80"
    assert server_key("wss://x.example:8443/socket.io") == "x.example:8443"


def test_bucket_gives_the_burst_then_one_token_per_refill() -> None:
    bucket = TokenBucket.full(CYTUBE, now=0.0)
    taken = []
    t = 0.0
    while len(taken) < 9:
        t = bucket.ready_at(t)
        bucket.take(t)
        taken.append(round(t, 6))
    assert taken == [0, 0, 0, 0, 0, 10, 20, 30, 40]


def test_bucket_margin_delays_refilled_tokens_only() -> None:
    bucket = TokenBucket.full(ServerLimitsConfig(token_margin_seconds=0.5), now=0.0)
    for _ in range(5):
        assert bucket.ready(0.0)
        bucket.take(0.0)
    assert not bucket.ready(10.0)
    assert bucket.ready_at(0.0) == pytest.approx(10.5)


def test_bucket_drained_by_a_refusal_and_given_back_when_unused() -> None:
    bucket = TokenBucket.full(CYTUBE, now=0.0)
    bucket.drain(3.0)
    assert bucket.ready_at(3.0) == pytest.approx(13.0)
    bucket.take(13.0)
    assert not bucket.ready(13.0)
    bucket.give_back(13.0)
    assert bucket.ready(13.0)


def test_slots_go_to_the_best_priority_up_to_the_cap() -> None:
    ledger = ServerLedger.new("s:1", ServerLimitsConfig(max_sockets=2), 0.0)
    ledger.want_slot("c", priority(False, 2))
    ledger.want_slot("b", priority(False, 1))
    ledger.want_slot("z", priority(True, 9))  # was READY before: first whatever its index
    assert ledger.grant_slots(0.0) == ["z", "b"]
    assert ledger.parked_reason(0.0) == "server allows 2 connections from this address; 1 room waiting"
    ledger.release("b")
    assert ledger.grant_slots(0.0) == ["c"]


def test_a_ghost_socket_counts_until_the_server_drops_it() -> None:
    ledger = ServerLedger.new("s:1", ServerLimitsConfig(max_sockets=1), 0.0)
    ledger.want_slot("a", priority(False, 0))
    assert ledger.grant_slots(0.0) == ["a"]
    ledger.release("a", ghost_until=30.0)
    ledger.want_slot("a", priority(True, 0))
    assert ledger.grant_slots(10.0) == []
    assert ledger.next_change_at(10.0) == 30.0
    assert ledger.grant_slots(30.5) == ["a"]


def test_socket_cap_kick_lowers_the_cap_until_the_recheck() -> None:
    ledger = ServerLedger.new("s:1", ServerLimitsConfig(max_sockets=10, socket_cap_recheck_seconds=60), 0.0)
    for i in range(4):
        ledger.want_slot(f"r{i}", priority(False, i))
    ledger.grant_slots(0.0)
    ledger.socket_cap_hit("r3", 5.0)  # someone else holds 7 sockets from this address
    ledger.want_slot("r3", priority(False, 3))
    assert ledger.grant_slots(6.0) == []
    assert "refused a socket with 3 of ours open" in ledger.parked_reason(6.0)
    assert ledger.next_change_at(6.0) == 65.0
    assert ledger.grant_slots(65.0) == ["r3"]


def test_guest_turns_one_at_a_time_and_window_from_the_last_success() -> None:
    ledger = ServerLedger.new("s:1", ServerLimitsConfig(guest_login_window_seconds=60), 0.0)
    ledger.want_guest_turn("a", priority(False, 0))
    ledger.want_guest_turn("b", priority(False, 1))
    assert ledger.grant_guest_turn(0.0) == "a"
    assert ledger.grant_guest_turn(0.0) is None  # a's login is still under way
    ledger.guest_done("a", 2.0, logged_in=True)
    assert ledger.grant_guest_turn(30.0) is None
    assert ledger.next_change_at(30.0) == 62.0
    assert ledger.grant_guest_turn(62.0) == "b"
    ledger.guest_done("b", 63.0, logged_in=False)  # a failed attempt does not start a window
    ledger.want_guest_turn("b", priority(False, 1))
    assert ledger.grant_guest_turn(63.0) == "b"


def test_tokens_go_to_the_best_priority_waiter() -> None:
    ledger = ServerLedger.new("s:1", ServerLimitsConfig(connection_burst=1, token_margin_seconds=0), 0.0)
    assert (ledger.want_token("x", priority(False, 0)), ledger.grant_tokens(0.0)) == (None, ["x"])
    ledger.want_token("late", priority(False, 5))
    ledger.want_token("was_ready", priority(True, 7))
    assert ledger.grant_tokens(5.0) == []
    assert ledger.grant_tokens(10.0) == ["was_ready"]
    assert ledger.grant_tokens(20.0) == ["late"]


# the async gate under FakeClock -------------------------------------------------------------

async def _token_times(gate: ServerGate, clock: FakeClock, rooms: int) -> dict[str, float]:
    got: dict[str, float] = {}

    async def one(i: int) -> None:
        await gate.token(f"r{i}", priority(False, i))
        got[f"r{i}"] = clock.monotonic()

    tasks = [asyncio.create_task(one(i)) for i in range(rooms)]
    await clock.advance(0)
    for _ in range(rooms * 2):
        if all(t.done() for t in tasks):
            break
        deadline = clock.next_deadline()
        assert deadline is not None
        await clock.advance(deadline - clock.monotonic())
    await asyncio.gather(*tasks)
    return got


async def test_twelve_waiters_get_tokens_on_the_bucket_schedule_in_config_order() -> None:
    clock = FakeClock()
    gate = Admission(CytubeConfig(servers={"default": {"token_margin_seconds": 0}}), clock).gate(
        "http://127.0.0.1:1"
    )
    got = await _token_times(gate, clock, 12)
    assert [got[f"r{i}"] for i in range(12)] == [0, 0, 0, 0, 0, 10, 20, 30, 40, 50, 60, 70]


async def test_a_cancelled_token_wait_gives_its_token_back() -> None:
    clock = FakeClock()
    gate = Admission(CytubeConfig(servers={"default": {"connection_burst": 1}}), clock).gate("http://h:1")
    await gate.token("a", priority(False, 0))
    waiter = asyncio.create_task(gate.token("b", priority(False, 1)))
    await clock.advance(1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.ledger.token_waiters == {}
    assert gate.token_wait() == pytest.approx(9.25)


async def test_a_release_wakes_the_best_parked_room() -> None:
    clock = FakeClock()
    gate = Admission(CytubeConfig(servers={"default": {"max_sockets": 1}}), clock).gate("http://h:1")
    assert gate.try_slot("a", priority(False, 0))
    assert not gate.try_slot("b", priority(False, 1))
    parked_c = asyncio.create_task(gate.slot("c", priority(False, 2)))
    parked_b = asyncio.create_task(gate.slot("b", priority(False, 1)))
    await clock.advance(0)
    assert gate.capacity().parked == ("b", "c")
    gate.release("a")
    await clock.advance(0)
    assert parked_b.done()
    assert not parked_c.done()
    parked_c.cancel()
    with pytest.raises(asyncio.CancelledError):
        await parked_c
    assert gate.capacity().parked == ()
    assert gate.capacity().in_use == 1


def test_a_server_that_was_unreachable_comes_back_with_fresh_buckets_and_windows() -> None:
    ledger = ServerLedger.new("s:1", ServerLimitsConfig(token_margin_seconds=0), 0.0)
    ledger.last_guest_login = 0.0
    for i in range(5):
        ledger.want_token(f"r{i}", priority(True, i))
    assert len(ledger.grant_tokens(0.0)) == 5
    for _ in range(5):
        ledger.attempt_failed()  # the server went away under them
    ledger.want_token("r0", priority(True, 0))
    assert ledger.grant_tokens(10.0) == ["r0"]
    ledger.unreached(10.0)  # connection refused: no token spent, the server is down
    ledger.want_token("r0", priority(True, 0))
    assert ledger.grant_tokens(10.0) == ["r0"]
    ledger.connected(10.0)  # it is back: a new process, buckets and windows fresh
    assert ledger.bucket.available(10.0) == 4.0  # 5 minus the attempt that just got in
    assert ledger.guest_ready_at() == float("-inf")


def test_without_evidence_of_a_restart_the_bucket_is_kept() -> None:
    ledger = ServerLedger.new("s:1", ServerLimitsConfig(token_margin_seconds=0), 0.0)
    for i in range(5):
        ledger.want_token(f"r{i}", priority(True, i))
    ledger.grant_tokens(0.0)
    ledger.connected(1.0)
    assert ledger.bucket.available(1.0) == pytest.approx(0.1)
