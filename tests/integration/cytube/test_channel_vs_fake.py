"""The replica daz builds from the fake server's frames equals the fake server's own channel state,
after the join sequence and after live changes (the fake follows CyTube 3.86's rules)."""

from __future__ import annotations

import asyncio

from tests.integration.cytube.conftest import Live, live

from daz.config import RoomConfig
from daz.cytube.channel import ChannelState
from daz.cytube.protocol import decode_text
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import ChannelSnapshot, FakeCytubeServer, PlaybackTiming

ROOM = "lobby"
TIMING = PlaybackTiming(tick_seconds=0.1, lead_in_seconds=0.3, end_grace_seconds=0.2)


def assert_same(replica: ChannelState, truth: ChannelSnapshot, *, now: float) -> None:
    assert [(i.uid, i.media.type, i.media.id, i.media.title, i.media.seconds, i.temp, i.queueby)
            for i in replica.items] == [
        (i.uid, i.type, i.id, i.title, i.seconds, i.temp, i.queueby) for i in truth.items]
    assert replica.current_uid == truth.current_uid
    if truth.current_uid is None:
        assert replica.playback is None
    else:
        assert replica.playback is not None
        assert replica.playback.paused == truth.paused
        position = replica.position_now(now)
        assert position is not None
        assert truth.position is not None
        # the replica extrapolates from the last mediaUpdate (every 0.5 s here); allow a tick or two
        assert abs(position - truth.position) < 0.6, (position, truth.position)
    assert {u.name: (u.rank, u.afk, u.muted) for u in replica.users.values()} == {
        u.name: (u.rank, u.afk, u.muted) for u in truth.users}
    assert replica.leader == truth.leader
    assert replica.locked == truth.locked
    assert replica.registered == truth.registered
    assert dict(replica.permissions) == dict(truth.permissions)
    assert dict(replica.options) == {k: v for k, v in truth.options.items() if k != "password"}
    assert replica.motd == truth.motd
    if truth.poll is None:
        assert replica.poll is None
    else:
        assert replica.poll is not None
        assert decode_text(replica.poll.title) == truth.poll.title
        assert tuple(decode_text(o) for o in replica.poll.options) == truth.poll.options
        assert replica.poll.initiator == truth.poll.initiator
        assert replica.poll.obscured == truth.poll.obscured
        if not truth.poll.obscured:
            assert replica.poll.counts == truth.poll.counts


async def settled(h: Live, server: FakeCytubeServer) -> None:
    """Until the replica agrees with the server (frames in flight), bounded; then compare strictly."""
    loop = asyncio.get_running_loop()
    last: AssertionError | None = None
    for _ in range(100):
        snap = h.manager.channel(ROOM)
        if snap is not None:
            try:
                assert_same(snap, server.channel_state(ROOM), now=loop.time())
                return
            except AssertionError as exc:
                last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replica never matched the server: {last}")


async def test_the_replica_equals_the_fake_servers_state() -> None:
    async with FakeCytubeServer(accounts={"dazbot": "pw"}, registered_channels=[ROOM], playback=TIMING,
                                media={("yt", f"v{i}"): (f"Video <{i}> & co", 60.0) for i in range(6)},
                                ) as server:
        # The channel has a life before the bot arrives: users, a playlist, something playing, a poll.
        await server.add_user(ROOM, "owner1", rank=4, ip="10.0.0.2")
        await server.add_user(ROOM, "guest1", rank=0, ip="10.0.0.3")
        for i in range(4):
            await server.user_act(ROOM, "owner1", "queue", {"id": f"v{i}", "type": "yt", "pos": "end"})
        await server.user_act(ROOM, "owner1", "newPoll",
                              {"title": "Best <b>one</b>?", "opts": ["a & b", "c"], "obscured": False})
        await server.user_act(ROOM, "guest1", "vote", {"option": 1})
        room = RoomConfig(channel=ROOM, username="dazbot", password="pw",  # type: ignore[arg-type]
                          server_url=server.url)
        async with live(server, rooms=[room]) as h:
            await h.state(RoomState.READY)
            await h.until(lambda: h.manager.channel(ROOM) is not None)
            await settled(h, server)

            # ...and it stays equal while the channel changes under it.
            await server.user_act(ROOM, "owner1", "queue", {"id": "v4", "type": "yt", "pos": "next"})
            await server.user_act(ROOM, "owner1", "delete", server.channel_state(ROOM).items[-1].uid)
            await server.user_act(ROOM, "owner1", "moveMedia",
                                  {"from": server.channel_state(ROOM).items[-1].uid, "after": "prepend"})
            await server.user_act(ROOM, "owner1", "setTemp",
                                  {"uid": server.channel_state(ROOM).items[0].uid, "temp": False})
            await server.user_act(ROOM, "owner1", "vote", {"option": 0})
            await server.remove_user(ROOM, "guest1")
            await server.add_user(ROOM, "late", rank=1, ip="10.0.0.4")
            await server.user_act(ROOM, "owner1", "playNext")
            await settled(h, server)
            await server.user_act(ROOM, "owner1", "closePoll")
            await server.user_act(ROOM, "owner1", "clearPlaylist")
            await settled(h, server)
            assert h.manager.channel(ROOM).playback is None  # type: ignore[union-attr]
