"""A uid-targeted action in doubt across a server restart, over real sockets (the whole bot).

CyTube renumbers every uid from 0 when it reloads a registered channel's saved playlist (measured on
CyTube 3.86; the fake does the same). A delete sent but unconfirmed when the server died must
delete the item it was meant for on the restarted server, not whatever holds its old uid now."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.cytube.test_actions_live import FAST, ROOM, bot, on_playlist

from daz.testing.fake_cytube import FakeCytubeServer

MEDIA = [f"rtmp://example.com/live/{n}" for n in "abcd"]


async def test_an_in_doubt_delete_after_a_renumbering_restart_deletes_its_own_item(tmp_path: Path) -> None:
    server = FakeCytubeServer(ping_interval=1, ping_timeout=2, limits=FAST, accounts={"DazBot": "pw"},
                              global_ranks={"DazBot": 2}, registered_channels=[ROOM])
    async with server, bot(tmp_path, server, account=("DazBot", "pw")) as b:
        actions = b.probe.actions
        for media_id in MEDIA:
            await (await actions.queue(ROOM, "rt", media_id, duration=60, temp=False)).result(timeout=20)
        first = server.channel_state(ROOM).items[0].uid
        await (await actions.delete(ROOM, first)).result(timeout=20)  # a: uids are now 1 2 3 (b c d)
        state = b.probe.ctx.channel(ROOM) if b.probe.ctx else None
        assert state is not None
        target = state.find_media("rt", MEDIA[2])
        assert target is not None
        # The delete of c goes out into a black hole (never handled), then the server restarts and
        # reloads b c d as uids 0 1 2: c's old uid now names d.
        server.go_silent()
        ticket = await actions.delete(ROOM, target.uid)
        await asyncio.sleep(0.5)
        await server.stop()
        server.go_silent(False)
        await server.start()
        outcome = await ticket.result(timeout=30)
        await b.until(lambda: len(on_playlist(server)) == 2)
        handled = [a.data for a in server.actions(ROOM, "delete")]
        left = on_playlist(server)
    assert left == [MEDIA[1], MEDIA[3]], "c deleted, d kept"
    assert handled == [first, target.uid - 1]  # the silenced send never arrived; c's new uid did
    assert outcome.detail == "deleted"
