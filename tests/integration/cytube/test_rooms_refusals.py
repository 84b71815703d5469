"""Refusals and kicks over real sockets, the fake's limits ON (numbers shrunk): the guest-login
window is waited out, a wrong password stops the room after one attempt, a ban stops it for good."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.cytube.conftest import fast_cytube, live

from daz.config import RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.faults import TcpProxy

WINDOW = 3.0  # guest-login window (CyTube: 60 s)


async def test_a_cut_guest_is_back_within_2s_of_the_window_with_no_refused_login() -> None:
    limits = CytubeLimits(guest_login_window_seconds=WINDOW)
    async with FakeCytubeServer(limits=limits, ping_interval=1.0, ping_timeout=3.0) as server, \
            TcpProxy("127.0.0.1", server.port) as proxy:
        room = RoomConfig(channel="lobby", server_url=f"http://127.0.0.1:{proxy.port}")
        async with live(server, rooms=[room]) as h:
            await h.state(RoomState.READY)
            await asyncio.sleep(0.5)
            proxy.cut()  # the connection dies; the server itself keeps running
            await h.until(lambda: h.status().state is not RoomState.READY)
            await h.state(RoomState.READY, timeout=WINDOW + 5)
            waited = [e for e in h.named("room.state_changed") if e["to"] == "waiting"]
        # Both logins timed by the server's own clock: the window runs from its first login, and a
        # re-login before it ends would have been refused (the fake enforces the window).
        first, second = server.guest_logins
        assert server.login_refusals == []
        assert WINDOW <= second - first <= WINDOW + 2.0
        assert waited
        assert waited[0]["reason"].startswith("guest-login window:")


async def test_a_wrong_password_stops_the_room_after_one_attempt(tmp_path: Path) -> None:
    secret = tmp_path / "bot.pw"
    secret.write_text("wrong\n")
    async with FakeCytubeServer(accounts={"dazbot": "right"}) as server:
        room = RoomConfig(channel="lobby", username="dazbot", password_file=secret, server_url=server.url)
        async with live(server, rooms=[room], cytube=fast_cytube(login_failure_retry_seconds=600)) as h:
            await h.state(RoomState.STOPPED)
            assert h.status().reason == "login refused: Invalid username/password combination"
            await asyncio.sleep(1.0)  # backoff is 0.2-1 s here: a retry would have happened
            assert len(server.login_refusals) == 1
            assert h.status().state is RoomState.STOPPED
            secret.write_text("right\n")
            h.manager.restart("lobby", "password fixed")
            await h.state(RoomState.READY)
        assert len(server.login_refusals) == 1
        assert "wrong" not in h.status().reason


async def test_a_ban_kick_stops_the_room_and_it_never_tries_again() -> None:
    async with FakeCytubeServer(accounts={"dazbot": "pw"}) as server:
        server.register_channel("lobby")
        room = RoomConfig(channel="lobby", username="dazbot", password="pw", server_url=server.url)  # type: ignore[arg-type]
        async with live(server, rooms=[room]) as h:
            await h.state(RoomState.READY)
            connects = server.connections_total
            await server.ban("lobby", name="dazbot")
            await h.state(RoomState.STOPPED)
            assert h.status().reason == "banned: You're banned!"
            await asyncio.sleep(2.0)  # ten backoff periods of this configuration
            assert server.connections_total == connects
            assert h.status().state is RoomState.STOPPED
        assert [e["outcome"] for e in h.named("room.stopped")] == ["banned"]
