"""Resync over real sockets: the replica after a reconnect reports what changed while away."""

from __future__ import annotations

import asyncio

from tests.integration.cytube.conftest import live

from daz.config import RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient
from daz.testing.faults import TcpProxy


async def user(server: FakeCytubeServer, name: str, ip: str) -> CytubeTestClient:
    client = CytubeTestClient(server.url, ip=ip)
    await client.connect()
    await client.join("lobby")
    reply = await client.login(name)
    assert reply["success"], reply
    return client


async def test_one_resync_reports_exactly_what_changed_while_disconnected() -> None:
    async with (
        FakeCytubeServer(accounts={"dazbot": "pw"}) as server,
        TcpProxy("127.0.0.1", server.port) as proxy,
    ):
        room = RoomConfig(channel="lobby", username="dazbot", password="pw",  # type: ignore[arg-type]
                          server_url=f"http://127.0.0.1:{proxy.port}")
        async with live(server, rooms=[room]) as h:
            alice = await user(server, "alice", "10.0.0.2")
            await server.play("lobby", media_id="first", seconds=600)
            await h.state(RoomState.READY)
            await h.until(lambda: (snap := h.manager.channel("lobby")) is not None
                          and snap.user("alice") is not None
                          and snap.playback is not None and snap.playback.media.id == "first")
            assert h.named("room.resynced") == []

            # The bot loses its link (and cannot come back yet); the channel moves on without it.
            proxy.drop_new()
            proxy.cut()
            await h.until(lambda: h.status().state is not RoomState.READY)
            before = h.manager.channel("lobby")
            bob = await user(server, "bob", "10.0.0.3")
            carol = await user(server, "carol", "10.0.0.4")
            await alice.close()
            await server.play("lobby", media_id="second", seconds=600)
            await asyncio.sleep(0.1)
            assert h.manager.channel("lobby") is before, "the replica is not touched while away"

            proxy.pass_through()
            await h.state(RoomState.READY, timeout=15)
            await h.until(lambda: len(h.named("room.resynced")) >= 1, timeout=10)
            await asyncio.sleep(0.3)  # a second resync would have arrived by now
            resyncs = h.named("room.resynced")
            assert len(resyncs) == 1
            diff = resyncs[0]["diff"]
            assert sorted(diff.users_joined) == ["bob", "carol"]
            assert diff.users_left == ("alice",)
            assert diff.rank_changed == ()
            assert diff.media_changed
            assert diff.media_before.id == "first"
            assert diff.media_after.id == "second"
            # As on CyTube, what plays is on the playlist: `play` put "second" after the temp item
            # "first" and started it, and the temp item left the playlist.
            assert [i.media.id for i in diff.items_added] == ["second"]
            assert [i.media.id for i in diff.items_removed] == ["first"]
            assert (diff.poll_opened, diff.poll_closed) == (None, None)
            snap = h.manager.channel("lobby")
            assert snap is not None
            assert sorted(snap.users) == ["bob", "carol", "dazbot"]
            assert sorted(resyncs[0]["state"].users) == ["bob", "carol", "dazbot"]
            for client in (bob, carol):
                await client.close()
