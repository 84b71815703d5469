"""The transport's inline event path under a burst: complete, in order, no overflow disconnect."""

from __future__ import annotations

from tests.integration.cytube.conftest import live

from daz.cytube.states import RoomState
from daz.testing.fake_cytube import FakeCytubeServer

BURST = 3_000  # well over one read-loop slice (256) and a real share of the 10,000-item inbox


async def test_a_burst_arrives_whole_in_order_with_malformed_frames_in_between() -> None:
    async with FakeCytubeServer(ping_interval=1, ping_timeout=2) as server:
        async with live(server) as h:
            await h.state(RoomState.READY)
            await server.say_many("lobby", [(f"u{i % 7}", f"line {i}") for i in range(BURST)])
            await server.send_malformed("lobby")
            await server.say("lobby", "last", "after the bad frames")
            await h.until(
                lambda: any(e["event"].username == "last" for e in h.named("cytube.chat")), timeout=20
            )
            assert h.status().state is RoomState.READY
        texts = [e["event"].text for e in h.named("cytube.chat") if not e["backlog"]]
        assert texts == [f"line {i}" for i in range(BURST)] + ["after the bad frames"]
        assert [r.text for r in server.chat_log("lobby")] == texts
        # send_malformed: two wrong-typed payloads, one oversize line, one frame that is not JSON.
        assert len(h.named("protocol.malformed")) == 4
        moves = [e["to"] for e in h.named("room.state_changed")]
        assert "backing_off" not in moves
