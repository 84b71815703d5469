"""A password-protected channel and an account with no channel password configured, over real
sockets: CyTube lets a moderator (effective rank >= 2) in once it has logged in at the prompt
(accesscontrol.js; measured on 3.86: rank, login, rank 2, the join burst, cancelNeedPassword), and
keeps everyone else at the prompt."""

from __future__ import annotations

import asyncio

from tests.integration.cytube.conftest import fast_cytube, live

from daz.config import RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

LIMITS = CytubeLimits(refill_seconds=0.2, guest_login_window_seconds=0.3)


def locked(rank: float) -> FakeCytubeServer:
    return FakeCytubeServer(limits=LIMITS, accounts={"dazbot": "pw"}, global_ranks={"dazbot": rank},
                            registered_channels=["lobby"], channel_passwords={"lobby": "sekrit"})


def account_room(server: FakeCytubeServer) -> RoomConfig:
    return RoomConfig(channel="lobby", username="dazbot", password="pw",  # type: ignore[arg-type]
                      server_url=server.url)


async def test_a_moderator_account_enters_a_password_channel_without_the_password() -> None:
    async with locked(2) as server, live(server, rooms=[account_room(server)]) as h:
        await h.state(RoomState.READY)
        present = [m.name for m in server.channel("lobby").members]
        sent = [a.event for a in server.actions("lobby") if a.name == "dazbot"]
    assert present == ["dazbot"]
    assert "channelPassword" not in sent  # it had none to send, and needed none


async def test_a_lower_rank_without_a_channel_password_stops_with_the_reason() -> None:
    async with locked(1) as server, live(server, rooms=[account_room(server)],
                                         cytube=fast_cytube(join_timeout_seconds=20)) as h:
        waited = await h.state(RoomState.STOPPED, timeout=15)
        reason = h.status().reason
        await asyncio.sleep(0.5)
        still = h.status().state
    assert "channel needs a password; none configured" in reason
    assert "rank here is 1" in reason
    assert waited < 10  # decided by the rank after the login, not by the 20 s join timeout
    assert still is RoomState.STOPPED


async def test_a_wrong_channel_password_stops_the_room_instead_of_reconnecting() -> None:
    # Each attempt costs the server a connection token and changes nothing until an operator acts.
    async with locked(1) as server:
        room = RoomConfig(channel="lobby", username="dazbot", password="pw",  # type: ignore[arg-type]
                          channel_password="wrong", server_url=server.url)  # type: ignore[arg-type]
        async with live(server, rooms=[room]) as h:
            await h.state(RoomState.STOPPED)
            await asyncio.sleep(1.0)  # the backoff here is 0.2-1 s: a retry would have come
            tries = len(server.actions("lobby", "channelPassword"))
            stopped = h.named("room.stopped")
    assert tries == 1
    assert [s["outcome"] for s in stopped] == ["channel_password"]
    assert "wrong channel password" in stopped[0]["reason"]
