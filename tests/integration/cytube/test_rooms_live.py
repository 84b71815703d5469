"""Must-show scenarios over real sockets against the fake CyTube server."""

from __future__ import annotations

import asyncio

from tests.integration.cytube.conftest import fast_cytube, live

from daz.config import RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

# CyTube's limits, shrunk: the guest window is what a guest bot meets when it reconnects at once.
FAST = CytubeLimits(refill_seconds=0.2, guest_login_window_seconds=0.3)


async def test_join_and_login_are_verified_and_chat_roundtrips() -> None:
    async with FakeCytubeServer(ping_interval=1, ping_timeout=2) as server:
        await server.say("lobby", "alice", "before <you> came")
        async with live(server) as h:
            await h.state(RoomState.READY)
            assert server.sessions("lobby") == ["dazbot"]
            status = h.status()
            assert (status.ping_interval, status.ping_timeout) == (1.0, 2.0)
            keys = await h.manager.send_chat("lobby", "hello <b>world</b> & co")
            await server.say("lobby", "bob", "hi dazbot")
            await h.until(lambda: len(h.named("room.line.delivered")) == 1)
            await h.until(lambda: any(e["event"].username == "bob" for e in h.named("cytube.chat")))
        chats = [
            (e["event"].username, e["event"].text, e["backlog"], e["own"]) for e in h.named("cytube.chat")
        ]
        assert chats[0] == ("alice", "before <you> came", True, False)
        assert ("dazbot", "hello <b>world</b> & co", False, True) in chats
        assert ("bob", "hi dazbot", False, False) in chats
        assert h.named("room.line.delivered")[0]["key"] == keys[0]
        assert [r.text for r in server.chat_log("lobby") if r.username == "dazbot"] == [
            "hello <b>world</b> & co"
        ]


async def test_failing_login_is_reported_not_assumed() -> None:
    async with FakeCytubeServer(accounts={"dazbot": "right"}) as server:
        room = RoomConfig(channel="lobby", username="dazbot", password="wrong", server_url=server.url)  # type: ignore[arg-type]
        async with live(server, rooms=[room]) as h:
            await h.until(lambda: bool(h.named("room.login_failed")))
            assert h.status().state is not RoomState.READY
            assert h.named("room.ready") == []
        assert h.named("room.login_failed")[0]["reason"] == "Invalid username/password combination"


async def test_restart_delivers_every_line_sent_while_down_exactly_once_in_order() -> None:
    async with FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST) as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            await h.manager.send_chat("lobby", "before the outage")
            await h.until(lambda: h.status().outbox_depth == 0)
            await server.stop()
            await h.until(lambda: h.status().state is not RoomState.READY)
            for i in range(10):
                await h.manager.send_chat("lobby", f"queued {i}")
            await server.start()
            await h.state(RoomState.READY, timeout=15)
            await h.until(lambda: h.status().outbox_depth == 0, timeout=15)
        texts = [r.text for r in server.chat_log("lobby") if r.username == "dazbot"]
        assert texts == ["before the outage"] + [f"queued {i}" for i in range(10)]
        assert server.restarts == 0
        assert server.port == h.server.port


async def test_silent_server_is_detected_within_interval_plus_timeout() -> None:
    async with FakeCytubeServer(ping_interval=0.5, ping_timeout=1.0, limits=FAST) as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            server.go_silent()
            took = await h.until(lambda: h.status().state is not RoomState.READY, timeout=10)
            server.go_silent(False)
            await h.state(RoomState.READY, timeout=10)
        assert took <= 0.5 + 1.0 + 0.2 + 1.0  # interval + timeout + margin + one watchdog tick
        reasons = [e["reason"] for e in h.named("room.state_changed") if e["to"] == "backing_off"]
        assert reasons
        assert reasons[0].split(":")[0] in {"no_frames", "disconnected"}


async def test_duplicate_login_kick_stops_the_room() -> None:
    async with FakeCytubeServer(accounts={"dazbot": "pw"}) as server:
        room = RoomConfig(channel="lobby", username="dazbot", password="pw", server_url=server.url)  # type: ignore[arg-type]
        async with live(server, rooms=[room]) as h:
            await h.state(RoomState.READY)
            async with live(server, rooms=[room]) as other:
                await other.state(RoomState.READY)
                await h.state(RoomState.KICKED)
                connects = server.connections_total
                await asyncio.sleep(1.5)
                assert server.connections_total == connects  # no fighting loop
        assert h.named("room.kicked") == [{"room": "lobby", "reason": "Duplicate login"}]
        assert server.duplicate_login_kicks == 1
        assert server.max_concurrent_sessions("dazbot", "lobby") == 1


async def test_cooldown_line_is_retried_after_the_cooldown() -> None:
    limits = CytubeLimits(chat_burst=2, chat_rate_per_second=2, chat_cooldown_ms=300)
    async with FakeCytubeServer(limits=limits) as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            for i in range(6):
                await h.manager.send_chat("lobby", f"burst {i}")
            await h.until(lambda: h.status().outbox_depth == 0, timeout=15)
        assert [r.text for r in server.chat_log("lobby")] == [f"burst {i}" for i in range(6)]
        assert h.metrics.messages_sent.labels(room="lobby", outcome="cooldown")._value.get() >= 1


async def test_malformed_frames_are_reported_and_the_connection_survives() -> None:
    async with FakeCytubeServer() as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            connects = server.connections_total
            assert await server.send_malformed("lobby") == 1
            await h.until(lambda: len(h.named("protocol.malformed")) >= 4)
            await server.say("lobby", "alice", "still here?")
            await h.until(lambda: any(e["event"].text == "still here?" for e in h.named("cytube.chat")))
            assert h.status().state is RoomState.READY
            assert server.connections_total == connects
        sizes = {e["event"]: e["size"] for e in h.named("protocol.malformed")}
        assert set(sizes) == {"chatMsg", "usercount", "?"}


async def test_line_in_doubt_that_the_server_has_is_not_resent() -> None:
    async with FakeCytubeServer(limits=FAST) as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            server.drop_echoes()
            await h.manager.send_chat("lobby", "exactly once")
            await h.until(lambda: len(server.chat_log("lobby")) == 1)
            server.kill_connections()  # the echo never arrived: the line is in doubt
            server.drop_echoes(False)
            await h.until(lambda: h.status().outbox_depth == 0, timeout=10)
            await h.state(RoomState.READY)
        assert [r.text for r in server.chat_log("lobby")] == ["exactly once"]
        assert h.metrics.messages_sent.labels(room="lobby", outcome="deduplicated")._value.get() == 1


async def test_line_in_doubt_that_the_server_lost_is_resent_once() -> None:
    async with FakeCytubeServer(limits=FAST) as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            server.delay_replies(0.5)
            await h.manager.send_chat("lobby", "try again")
            await asyncio.sleep(0.2)  # the server holds the line; the connection dies before it lands
            server.kill_connections()
            server.delay_replies(0)
            await h.until(lambda: h.status().outbox_depth == 0, timeout=10)
        assert [r.text for r in server.chat_log("lobby")] == ["try again"]


async def test_every_frame_including_pings_refreshes_liveness() -> None:
    async with FakeCytubeServer(ping_interval=0.2, ping_timeout=0.5) as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            first = h.status().last_frame_at
            await asyncio.sleep(0.7)  # no events, only Engine.IO PINGs
            later = h.status().last_frame_at
            assert first is not None
            assert later is not None
            assert later - first >= 0.3
            assert h.status().state is RoomState.READY


async def test_discovery_via_socketconfig_and_rate_limit_reason_is_kept() -> None:
    async with FakeCytubeServer(limits=CytubeLimits(bucket_size=1, guest_login_window_seconds=0.3)) as server:
        room = RoomConfig(channel="lobby", username="dazbot")
        # daz believes in a bigger bucket than the server has (another process from this address
        # took tokens): the server's refusal is kept and the room waits at least 10 s.
        limits = {"default": {"connection_burst": 5, "guest_login_window_seconds": 0.3}}
        async with live(server, rooms=[room], cytube=fast_cytube(base_url=server.url, servers=limits)) as h:
            await h.state(RoomState.READY)
            server.kill_connections()
            await h.until(
                lambda: (
                    bool(h.named("room.state_changed"))
                    and any(e["reason"].startswith("rate_limited") for e in h.named("room.state_changed"))
                )
            )
            status = h.status()
            assert status.state is RoomState.BACKING_OFF
            assert status.next_delay >= 10.0
        assert server.refused_connects >= 1
