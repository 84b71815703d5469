"""Over real sockets, against the fake server's playback clock (CyTube's rules): however the playlist
ends, the replica says what plays (or nothing) and the room media check passes on the idle channel
for longer than its timeout."""

from __future__ import annotations

import asyncio

import pytest
from tests.integration.cytube.conftest import Live, fast_cytube, live

from daz.clock import SystemClock
from daz.config import RoomConfig
from daz.cytube.states import RoomState
from daz.health.checks import RoomLimits, RoomsCheck
from daz.testing.fake_cytube import FakeCytubeServer, PlaybackTiming

ROOM = "lobby"
TIMEOUT = 1.5  # media_update_timeout_seconds; the fake ticks mediaUpdate every 0.5 s
TIMING = PlaybackTiming(tick_seconds=0.1, lead_in_seconds=0.3, end_grace_seconds=0.2)


async def media_verdicts(h: Live, seconds: float) -> list[str]:
    """The room check's media verdict every 0.25 s for ``seconds``."""
    check = RoomsCheck(lambda: [h.manager.room(ROOM)], None, SystemClock(),
                       RoomLimits(media_update_timeout_seconds=TIMEOUT, liveness_margin_seconds=5))
    out = []
    for _ in range(int(seconds / 0.25)):
        results = await check.run()
        out += [r.status.value for r in results if r.measurement == "media"]
        await asyncio.sleep(0.25)
    return out


async def start(server: FakeCytubeServer, h: Live, *, seconds: float, temp: bool) -> int:
    await h.state(RoomState.READY)
    uid = await server.play(ROOM, media_id="m1", seconds=seconds, temp=temp)
    await h.until(lambda: h.status().media_playing, timeout=5)
    return uid


@pytest.mark.parametrize("ending", ["last_temp_item_ends", "clear_playlist", "delete_current_item"])
async def test_the_playlist_ends_and_the_idle_channel_stays_healthy(ending: str) -> None:
    async with FakeCytubeServer(accounts={"dazbot": "pw"}, registered_channels=[ROOM],
                                playback=TIMING) as server:
        await server.add_user(ROOM, "owner1", rank=4, ip="10.0.0.2")
        room = RoomConfig(channel=ROOM, username="dazbot", password="pw",  # type: ignore[arg-type]
                          server_url=server.url)
        async with live(server, rooms=[room],
                        cytube=fast_cytube(media_update_timeout_seconds=TIMEOUT)) as h:
            uid = await start(server, h, seconds=1.0 if ending == "last_temp_item_ends" else 600.0,
                              temp=ending == "last_temp_item_ends")
            if ending == "clear_playlist":
                await server.user_act(ROOM, "owner1", "clearPlaylist")
            elif ending == "delete_current_item":
                await server.user_act(ROOM, "owner1", "delete", uid)
            await h.until(lambda: server.channel_state(ROOM).current_uid is None, timeout=5)
            await h.until(lambda: not h.status().media_playing, timeout=5)
            snap = h.manager.channel(ROOM)
            assert snap is not None
            assert snap.playback is None
            assert snap.current is None
            assert snap.items == ()
            verdicts = await media_verdicts(h, 2 * TIMEOUT)
            assert verdicts
            assert set(verdicts) == {"pass"}
            assert h.named("room.media_stale") == []
            assert h.status().state is RoomState.READY
            assert h.status().reconnects == 0


async def test_a_looping_single_item_plays_on_and_passes() -> None:
    async with FakeCytubeServer(accounts={"dazbot": "pw"}, registered_channels=[ROOM],
                                playback=TIMING) as server:
        room = RoomConfig(channel=ROOM, username="dazbot", password="pw",  # type: ignore[arg-type]
                          server_url=server.url)
        async with live(server, rooms=[room],
                        cytube=fast_cytube(media_update_timeout_seconds=TIMEOUT)) as h:
            uid = await start(server, h, seconds=1.0, temp=False)
            changes_before = len(h.named("channel.media.changed"))
            verdicts = await media_verdicts(h, 2 * TIMEOUT)
            assert set(verdicts) == {"pass"}
            assert len(h.named("channel.media.changed")) >= changes_before + 1, "it looped"
            snap = h.manager.channel(ROOM)
            assert snap is not None
            assert [it.uid for it in snap.items] == [uid]
            assert snap.current_uid == uid
            assert h.named("room.media_stale") == []
