"""RoomSupervisor under FakeClock: backoff schedule, cancellation, kicks, liveness, flaps, outbox."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from tests.unit.cytube.conftest import harness, make_config

from daz.config import BackoffConfig, ProbeConfig
from daz.cytube.outbox import InMemoryJournal, OutboundLine
from daz.cytube.states import RoomState, reconnect_delay
from daz.errors import RateLimited, ServerDisconnected
from daz.testing import FakeClock
from daz.testing.fake_transport import FakeLine, FakeNetwork


async def test_backoff_schedule_for_attempts_1_to_12_matches_the_seeded_rng(network: FakeNetwork) -> None:
    network.reachable = False
    seed = 1234
    async with harness(make_config(), network, seed=seed) as h:
        for _ in range(12):
            await h.until(RoomState.BACKING_OFF)
            await h.clock.advance(h.status.next_delay)
        await h.settle()
    delays = [e["next_delay"] for e in h.named("room.state_changed") if e["to"] == "backing_off"][:12]
    attempts = [e["attempt"] for e in h.named("room.state_changed") if e["to"] == "backing_off"][:12]
    # The manager derives the room's rng from the seed exactly like this (first draw of the root rng).
    room_rng = random.Random(random.Random(seed).getrandbits(64))
    expected = [reconnect_delay(i, room_rng, BackoffConfig()) for i in range(1, 13)]
    assert attempts == list(range(1, 13))
    assert delays == expected
    assert delays[-1] <= 300.0
    assert delays[-1] >= 225.0


async def test_stop_during_a_long_backoff_returns_promptly(network: FakeNetwork) -> None:
    network.reachable = False
    async with harness(make_config(), network) as h:
        await h.until(RoomState.BACKING_OFF)
        for _ in range(8):  # push the backoff to minutes
            await h.clock.advance(h.status.next_delay)
            await h.until(RoomState.BACKING_OFF)
        assert h.status.next_delay > 100
        started = time.perf_counter()
        h.stopping.set()
        async with asyncio.timeout(1):
            await h.task
        elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # the backoff left was minutes (on the fake clock, never advanced here)
    assert h.status.state is RoomState.CLOSED


async def test_cancelling_the_manager_during_backoff_is_prompt(network: FakeNetwork) -> None:
    network.reachable = False
    async with harness(make_config(), network) as h:
        await h.until(RoomState.BACKING_OFF)
        started = time.perf_counter()
        h.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await h.task
        assert time.perf_counter() - started < 0.1
        h.stopping.set()


async def test_rate_limit_refusal_waits_at_least_ten_seconds(network: FakeNetwork) -> None:
    network.refuse(RateLimited("refused", reason="Rate limit exceeded"))
    async with harness(make_config(), network) as h:
        await h.until(RoomState.BACKING_OFF)
        assert h.status.next_delay >= 10.0
        connects = network.connects
        await h.clock.advance(9.9)
        assert network.connects == connects
        await h.until(RoomState.READY, step=0.5)
        assert h.clock.monotonic() >= 10.0


async def test_duplicate_login_kick_stops_the_room_until_asked(network: FakeNetwork) -> None:
    async with harness(make_config(), network) as h:
        await h.until(RoomState.READY)
        network.current.kick("Duplicate login")  # type: ignore[union-attr]
        await h.until(RoomState.KICKED)
        connects = network.connects
        await h.clock.advance(3600)
        await h.settle()
        assert network.connects == connects
        assert h.status.kicked_reason == "Duplicate login"
        assert h.named("room.kicked") == [{"room": "lobby", "reason": "Duplicate login"}]
        h.manager.reconnect("lobby", "operator")
        await h.until(RoomState.READY)


async def test_a_moderator_kick_rejoins_after_the_polite_delay(network: FakeNetwork) -> None:
    async with harness(make_config(kick_rejoin_delay_seconds=30), network) as h:
        await h.until(RoomState.READY)
        network.current.kick("be nice")  # type: ignore[union-attr]
        await h.until(RoomState.BACKING_OFF)
        assert h.status.next_delay == 30
        assert h.status.reason == "kicked by a moderator: be nice"
        connects = network.connects
        await h.clock.advance(29)
        assert network.connects == connects
        await h.until(RoomState.READY, step=1.0)
        assert h.named("room.kicked") == []
        assert h.status.attempt == 0  # a kick is not a failed attempt


async def test_silent_connection_is_torn_down_after_interval_plus_timeout(network: FakeNetwork) -> None:
    network.ping_interval, network.ping_timeout = 2.0, 3.0
    async with harness(make_config(liveness_margin_seconds=0.5), network) as h:
        await h.until(RoomState.READY)
        transport = network.current
        assert transport is not None
        transport.silent = True
        went_silent = h.clock.monotonic()
        await h.until(RoomState.BACKING_OFF, step=0.25)
        detected = h.clock.monotonic() - went_silent
        assert 5.5 <= detected <= 6.5
        reasons = [e["reason"] for e in h.named("room.state_changed") if e["to"] == "backing_off"]
        assert reasons[-1].startswith("no_frames")


async def test_idle_channel_with_pings_stays_ready_for_hours(network: FakeNetwork) -> None:
    async with harness(make_config(media_update_timeout_seconds=300), network) as h:
        await h.until(RoomState.READY)
        transport = network.current
        assert transport is not None
        for _ in range(3 * 3600 // 25):
            await h.clock.advance(25)
            transport.ping()  # the server's PING
        assert h.status.state is RoomState.READY
        assert network.connects == 1


async def test_media_timeout_needs_a_playing_item_and_an_overdue_ping(network: FakeNetwork) -> None:
    async with harness(make_config(media_update_timeout_seconds=60, liveness_margin_seconds=1), network) as h:
        await h.until(RoomState.READY)
        transport = network.current
        assert transport is not None
        transport.push(
            "changeMedia",
            {"id": "x", "type": "yt", "title": "t", "seconds": 600, "currentTime": 0, "paused": False},
        )
        for _ in range(10):  # 250 s of PINGs but no mediaUpdate: stale, not dead
            await h.clock.advance(25)
            transport.ping()
        assert h.status.state is RoomState.READY
        assert h.named("room.media_stale")
        await h.until(RoomState.BACKING_OFF, step=1.0, limit=40)  # PINGs stop: confirmed
        reasons = [e["reason"] for e in h.named("room.state_changed") if e["to"] == "backing_off"]
        assert reasons[-1].startswith("media_timeout")


async def test_flapping_room_is_reported_degraded(network: FakeNetwork) -> None:
    async with harness(make_config(flap_threshold=3, stable_after_seconds=60), network) as h:
        for _ in range(3):
            await h.until(RoomState.READY, step=0.5)
            await h.clock.advance(1)
            network.current.drop(ServerDisconnected("gone", reason="transport error"))  # type: ignore[union-attr]
            await h.until(RoomState.BACKING_OFF)
        await h.settle()
        assert h.status.degraded
        assert h.status.flaps_in_window == 3
        assert len(h.named("room.degraded")) == 1


async def test_attempts_reset_only_after_a_stable_session(network: FakeNetwork) -> None:
    async with harness(make_config(stable_after_seconds=60), network) as h:
        await h.until(RoomState.READY)
        for expected_attempt in (1, 2):
            network.current.drop()  # type: ignore[union-attr]
            await h.until(RoomState.BACKING_OFF)
            assert h.status.attempt == expected_attempt
            await h.until(RoomState.READY, step=0.5)
        for _ in range(70):
            await h.clock.advance(1)
            network.current.ping()  # type: ignore[union-attr]
        assert h.status.attempt == 0


async def test_lines_sent_while_down_are_delivered_in_order_exactly_once(network: FakeNetwork) -> None:
    network.reachable = False
    async with harness(make_config(), network) as h:
        await h.until(RoomState.BACKING_OFF)
        keys = [k for i in range(5) for k in await h.manager.send_chat("lobby", f"line {i}")]
        assert h.status.outbox_depth == 5
        network.reachable = True
        await h.until(RoomState.READY, step=0.5)
        for _ in range(20):
            await h.settle()
            if h.status.outbox_depth == 0:
                break
        await h.settle()
    assert [line.text for line in network.chat_log] == [f"line {i}" for i in range(5)]
    assert [e["key"] for e in h.named("room.line.delivered")] == keys


async def test_in_doubt_line_found_in_backlog_is_not_resent(network: FakeNetwork) -> None:
    async with harness(make_config(delivery_timeout_seconds=5), network) as h:
        await h.until(RoomState.READY)
        network.echo_chat = False  # the server records the line, but the echo never reaches us
        await h.manager.send_chat("lobby", "only once please")
        await h.until_seen(RoomState.BACKING_OFF, step=1.0)  # echo timeout → reconnect, line in doubt
        network.echo_chat = True
        await h.until(RoomState.READY, step=0.5)
        await h.settle()
        assert h.status.outbox_depth == 0
    assert [line.text for line in network.chat_log] == ["only once please"]


async def test_in_doubt_line_missing_from_backlog_is_resent(network: FakeNetwork) -> None:
    async with harness(make_config(delivery_timeout_seconds=5), network) as h:
        await h.until(RoomState.READY)
        network.cooldowns.clear()
        transport = network.current
        assert transport is not None
        transport.username = None  # the server drops this line silently
        await h.manager.send_chat("lobby", "lost on the way")
        await h.until_seen(RoomState.BACKING_OFF, step=1.0)
        await h.until(RoomState.READY, step=0.5)
        await h.settle()
        assert h.status.outbox_depth == 0
    assert [line.text for line in network.chat_log] == ["lost on the way"]


async def _restored_journal(created_at: float) -> InMemoryJournal:
    journal = InMemoryJournal()
    await journal.save(OutboundLine(key="k1", room="lobby", kind="chat", text="sent before the crash",
                                    created_at=created_at))
    return journal


async def test_restored_line_already_on_the_server_is_not_sent_again(network: FakeNetwork) -> None:
    # A previous process sent the line and died before the echo: the server's backlog has it.
    created = FakeClock().now().timestamp()
    network.backlog.append(FakeLine("lobby", "dazbot", "sent before the crash", int(created * 1000) + 50))
    async with harness(make_config(), network, journal=await _restored_journal(created)) as h:
        await h.until(RoomState.READY)
        await h.settle()
        assert h.status.outbox_depth == 0
    assert network.chat_log == []  # nothing new reached the server
    assert [e["key"] for e in h.named("room.line.delivered")] == ["k1"]


async def test_restored_line_missing_from_the_backlog_is_sent_once(network: FakeNetwork) -> None:
    created = FakeClock().now().timestamp()
    async with harness(make_config(), network, journal=await _restored_journal(created)) as h:
        await h.until(RoomState.READY)
        await h.settle()
        assert h.status.outbox_depth == 0
    assert [line.text for line in network.chat_log] == ["sent before the crash"]


async def test_cooldown_retries_the_line_after_the_cooldown(network: FakeNetwork) -> None:
    async with harness(make_config(), network) as h:
        await h.until(RoomState.READY)
        network.cooldowns.append(1000)
        await h.manager.send_chat("lobby", "patience")
        await h.settle()
        assert network.chat_log == []
        await h.clock.advance(0.9)
        assert network.chat_log == []
        await h.clock.advance(0.2)
        await h.settle()
    assert [line.text for line in network.chat_log] == ["patience"]
    assert h.metrics.messages_sent.labels(room="lobby", outcome="cooldown")._value.get() == 1


async def test_backlog_and_own_echo_are_flagged(network: FakeNetwork) -> None:
    network.backlog.append(FakeLine("lobby", "alice", "old news", 1))
    async with harness(make_config(), network) as h:
        await h.until(RoomState.READY)
        await h.manager.send_chat("lobby", "hello")
        await h.settle()
        network.current.push("chatMsg", {"username": "bob", "msg": "hi &amp; bye", "meta": {}, "time": 5})  # type: ignore[union-attr]
        await h.settle()
    chats = [(e["event"].username, e["event"].text, e["backlog"], e["own"]) for e in h.named("cytube.chat")]
    assert chats == [
        ("alice", "old news", True, False),
        ("dazbot", "hello", False, True),
        ("bob", "hi & bye", False, False),
    ]


async def test_failed_login_is_reported_not_assumed(network: FakeNetwork) -> None:
    network.login_error = "Invalid username/password combination"
    async with harness(make_config(), network) as h:
        await h.until(RoomState.STOPPED)
        await h.settle()
        assert h.named("room.login_failed") == [
            {"room": "lobby", "reason": "Invalid username/password combination", "outcome": "bad_credentials"}
        ]
        assert h.named("room.ready") == []


async def test_give_up_after_attempts_publishes_gave_up(network: FakeNetwork) -> None:
    network.reachable = False
    async with harness(make_config(give_up_after_attempts=3), network) as h:
        for _ in range(2):
            await h.until(RoomState.BACKING_OFF)
            await h.clock.advance(h.status.next_delay)
        await h.until(RoomState.CLOSED)
        await h.settle()
        assert h.named("room.gave_up") == [{"room": "lobby", "attempts": 3, "reason": "discovery"}]
        assert network.connects == 0


async def test_malformed_frames_are_counted_and_the_connection_survives(network: FakeNetwork) -> None:
    async with harness(make_config(), network) as h:
        await h.until(RoomState.READY)
        transport = network.current
        assert transport is not None
        transport.push("chatMsg", {"username": 5, "msg": None})
        transport.push("chatMsg", {"username": "x", "msg": "y" * 20_000, "meta": {}, "time": 1})
        transport.push_malformed(size=17)
        await h.settle()
        assert h.status.state is RoomState.READY
        events = h.named("protocol.malformed")
    assert [e["event"] for e in events] == ["chatMsg", "chatMsg", "?"]
    assert h.metrics.protocol_malformed.labels(room="lobby")._value.get() == 3


async def test_probe_cuts_a_long_backoff_short(network: FakeNetwork) -> None:
    network.reachable = False
    probe = ProbeConfig(enabled=True, interval_seconds=1, max_interval_seconds=3)
    async with harness(make_config(probe=probe), network) as h:
        for _ in range(8):
            await h.until(RoomState.BACKING_OFF)
            await h.clock.advance(h.status.next_delay)
        await h.until(RoomState.BACKING_OFF)
        assert h.status.next_delay > 60
        network.reachable = True
        started = h.clock.monotonic()
        await h.until(RoomState.READY, step=0.25)
        assert h.clock.monotonic() - started <= 3.25
        assert h.named("room.ready")


async def test_without_probe_recovery_waits_for_the_backoff(network: FakeNetwork) -> None:
    network.reachable = False
    async with harness(make_config(), network) as h:
        for _ in range(8):
            await h.until(RoomState.BACKING_OFF)
            await h.clock.advance(h.status.next_delay)
        await h.until(RoomState.BACKING_OFF)
        remaining = h.status.next_delay
        network.reachable = True
        await h.clock.advance(remaining - 1)
        assert h.status.state is RoomState.BACKING_OFF
        await h.until(RoomState.READY, step=0.5)


async def test_the_in_memory_fake_completes_a_join_so_plugins_see_a_channel(network: FakeNetwork) -> None:
    # FakeNetwork is what plugin authors use without sockets: its join must be complete for the
    # replica (permissions, a rank after the login, our own user), or ctx.channel(room) stays None.
    async with harness(make_config(), network) as h:
        await h.until(RoomState.READY)
        await h.settle()
        state = h.manager.channel("lobby")
        assert state is not None
        assert state.self_rank == 0
        assert state.user("dazbot") is not None
