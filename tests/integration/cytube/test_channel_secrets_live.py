"""The channel password CyTube sends in clear (``channelOpts.password``) never leaves the wire:
not in the replica, the bus (``cytube.channelOpts``, ``channel.synced``, ``room.resynced``), the
status page's channel summary or the logs. Over real sockets, with a resync in between."""

from __future__ import annotations

import pytest
from tests.integration.cytube.conftest import live

from daz.config import RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import FakeCytubeServer
from daz.testing.faults import TcpProxy

SECRET = "chan-s3cret-9f2"  # the test's own channel password


async def test_the_channel_password_in_channel_opts_reaches_no_event_summary_or_log(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async with (
        FakeCytubeServer(accounts={"dazbot": "pw"}, registered_channels=["lobby"],
                         channel_passwords={"lobby": SECRET}) as server,
        TcpProxy("127.0.0.1", server.port) as proxy,
    ):
        room = RoomConfig(channel="lobby", username="dazbot", password="pw",  # type: ignore[arg-type]
                          channel_password=SECRET, server_url=f"http://127.0.0.1:{proxy.port}")
        async with live(server, rooms=[room]) as h:
            await h.state(RoomState.READY)
            await h.until(lambda: h.manager.channel("lobby") is not None)
            proxy.cut()  # a resync: the password comes again in the fresh join burst
            await h.until(lambda: len(h.named("room.resynced")) >= 1, timeout=15)
            snapshot = h.manager.channel("lobby")
            summary = h.manager.channel_summary("lobby")
            events = list(h.events)
    assert snapshot is not None
    assert "password" not in snapshot.options
    assert snapshot.options.get("allow_voteskip") is True  # the other options are kept
    names = {e.name for e in events}
    assert {"cytube.channelOpts", "channel.synced", "room.resynced"} <= names  # the carriers were seen
    for event in events:
        assert SECRET not in repr(event.data), event.name
    assert SECRET not in repr(summary)
    out, err = capfd.readouterr()
    assert SECRET not in out + err
