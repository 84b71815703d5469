"""GET /api/status carries each room's channel card, built from the live replica."""

from __future__ import annotations

import aiohttp
from tests.integration.cytube.conftest import live
from tests.integration.health.health_stack import health_stack, wait_for
from tests.unit.health.health_fakes import FakeRoom

from daz.cytube.states import RoomState
from daz.health.sources import StatusSources
from daz.testing.fake_cytube import FakeCytubeServer
from daz.testing.fake_cytube.client import CytubeTestClient


async def test_the_room_card_shows_users_and_what_plays() -> None:
    async with FakeCytubeServer() as server, live(server) as h:
        await h.state(RoomState.READY)
        async with CytubeTestClient(server.url, ip="10.0.0.9") as alice:
            await alice.join("lobby")
            assert (await alice.login("alice"))["success"]
            await server.play("lobby", media_id="abc", title="A <b>song</b>", seconds=300)
            sources = StatusSources(rooms=lambda: [h.manager.room(n) for n in h.manager.rooms()],
                                    channels=h.manager.channel_summary)
            async with health_stack([], sources=sources) as stack, aiohttp.ClientSession() as http:

                async def card() -> dict | None:  # type: ignore[type-arg]
                    async with http.get(stack.url + "/api/status") as resp:
                        doc = await resp.json()
                    return doc["rooms"][0]["channel"]

                async def shows_everything() -> bool:
                    c = await card()
                    return (c is not None and c["now_playing"] is not None
                            and {"alice", "dazbot"} <= {u["name"] for u in c["users"]["shown"]})

                await wait_for(shows_everything)
                c = await card()
                assert c is not None
                assert c["live"] is True
                assert c["now_playing"]["title"] == "A <b>song</b>"  # raw text; the page escapes it
                assert c["now_playing"]["seconds"] == 300
                assert c["users"]["count"] == 2
                assert c["poll"] is None


async def test_a_failing_card_source_breaks_only_that_card() -> None:
    def broken(room: str) -> None:
        raise RuntimeError("replica gone")

    sources = StatusSources(rooms=lambda: [FakeRoom("lobby")], channels=broken)
    async with health_stack([], sources=sources) as stack, aiohttp.ClientSession() as http:
        async with http.get(stack.url + "/api/status") as resp:
            assert resp.status == 200
            room = (await resp.json())["rooms"][0]
    assert room["name"] == "lobby"
    assert room["state"] == "ready"
    assert "replica gone" in room["channel"]["error"]
