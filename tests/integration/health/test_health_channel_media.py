"""The room media check trusts the channel replica for what plays (issue 13's defect).

Against the real server, the end of the last temporary item is only ``delete`` +
``setPlaylistMeta {count: 0}``: no ``changeMedia``, nothing "stops". daz used to keep believing
media played and failed "no mediaUpdate for 30s while media plays" on an idle channel. Each way a
playlist can end is replayed here with the real server's frames (cytube-protocol-actions.md 3.2,
3.3) through the real RoomManager, supervisor and health monitor on FakeClock.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.health.test_health_rooms import Rig, rig

from daz.cytube.states import RoomState
from daz.testing.fake_transport import FakeNetwork, FakeTransport

TIMEOUT = 30.0


def media(mid: str, seconds: float) -> dict[str, Any]:
    return {"id": mid, "title": "Livestream", "seconds": seconds, "duration": "00:10", "type": "rt",
            "meta": {}}


def item(uid: int, mid: str, *, temp: bool, seconds: float = 10) -> dict[str, Any]:
    return {"media": media(mid, seconds), "uid": uid, "temp": temp, "queueby": "owner1"}


def meta(count: int) -> dict[str, Any]:
    return {"count": count, "rawTime": 10 * count, "time": "00:10"}


async def start(r: Rig, t: FakeTransport, items: list[dict[str, Any]]) -> None:
    """The playlist arrives, the first item starts (lead-in), then the clock runs."""
    first = items[0]
    t.push("setPlaylistMeta", meta(len(items)))
    t.push("playlist", items)
    t.push("setCurrent", first["uid"])
    t.push("changeMedia", {**first["media"], "currentTime": -3, "paused": True})
    await r.clock.advance(3)
    t.push("mediaUpdate", {"currentTime": 0, "paused": False})
    await r.clock.advance(0)
    assert r.manager.room("lobby").media_playing


async def idle_past_the_timeout(r: Rig, t: FakeTransport) -> None:
    """Only PINGs for three media timeouts: an idle channel is silent and healthy."""
    for _ in range(int(3 * TIMEOUT // 5)):
        await r.clock.advance(5)
        t.frame()


def media_check(r: Rig) -> str:
    report = r.monitor.latest()
    assert report is not None
    return next(x for x in report.components["room:lobby"].results if x.measurement == "media").status.value


ENDINGS: dict[str, list[tuple[str, Any]]] = {
    # the last temporary item ends: the real server sends only these two frames
    "last_temp_item_ends": [("delete", {"uid": 1}), ("setPlaylistMeta", meta(0))],
    # a moderator's clearPlaylist
    "clear_playlist": [("playlist", []), ("setPlaylistMeta", meta(0))],
    # a delete of the current (only) item
    "delete_current_item": [("delete", {"uid": 1}), ("setPlaylistMeta", meta(0))],
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
async def test_the_media_check_passes_on_a_channel_whose_playlist_ended(ending: str) -> None:
    network = FakeNetwork(ping_interval=25.0, ping_timeout=120.0)
    async with rig(network, media_update_timeout_seconds=TIMEOUT) as r:
        await r.until(lambda: r.state() is RoomState.READY, step=0.25, limit=100)
        t = network.current
        assert t is not None
        await start(r, t, [item(1, "rtmp://x/a", temp=ending != "delete_current_item")])
        for name, data in ENDINGS[ending]:
            t.push(name, data)
        await r.clock.advance(0)
        assert not r.manager.room("lobby").media_playing, "the replica says nothing plays"
        await idle_past_the_timeout(r, t)
        assert media_check(r) == "pass"
        assert r.recoveries() == 0
        assert network.connects == 1
        assert not [e for e in r.events if e.name == "room.media_stale"]


async def test_a_deleted_current_item_hands_over_to_the_next_and_the_check_still_watches() -> None:
    network = FakeNetwork(ping_interval=25.0, ping_timeout=120.0)
    async with rig(network, media_update_timeout_seconds=TIMEOUT) as r:
        await r.until(lambda: r.state() is RoomState.READY, step=0.25, limit=100)
        t = network.current
        assert t is not None
        await start(r, t, [item(1, "rtmp://x/a", temp=True), item(2, "rtmp://x/b", temp=True, seconds=600)])
        t.push("delete", {"uid": 1})
        t.push("setPlaylistMeta", meta(1))
        t.push("setCurrent", 2)
        t.push("changeMedia", {**media("rtmp://x/b", 600), "currentTime": -3, "paused": True})
        await r.clock.advance(3)
        t.push("mediaUpdate", {"currentTime": 0, "paused": False})
        await r.clock.advance(0)
        assert r.manager.room("lobby").media_playing, "item 2 plays now"
        # ...and when ITS updates stop (PINGs still come), the check does fail: it was not
        # simply switched off.
        await idle_past_the_timeout(r, t)
        assert media_check(r) == "fail"


async def test_a_looping_single_item_keeps_playing_and_passes() -> None:
    network = FakeNetwork(ping_interval=25.0, ping_timeout=120.0)
    async with rig(network, media_update_timeout_seconds=TIMEOUT) as r:
        await r.until(lambda: r.state() is RoomState.READY, step=0.25, limit=100)
        t = network.current
        assert t is not None
        await start(r, t, [item(1, "rtmp://x/a", temp=False, seconds=10)])
        for _ in range(8):  # the real cadence: ticks at 5 and 10, end at 12, restart with a lead-in
            for position in (5, 10):
                await r.clock.advance(5)
                t.push("mediaUpdate", {"currentTime": position, "paused": False})
            await r.clock.advance(2)
            t.push("setCurrent", 1)
            t.push("changeMedia", {**media("rtmp://x/a", 10), "currentTime": -3, "paused": True})
            await r.clock.advance(3)
            t.push("mediaUpdate", {"currentTime": 0, "paused": False})
            t.frame()
        await r.clock.advance(0)
        assert r.manager.room("lobby").media_playing
        assert media_check(r) == "pass"
        assert r.manager.room("lobby").state is RoomState.READY
        assert network.connects == 1
