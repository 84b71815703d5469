"""A black-holed connection (no FIN, no RST) through TcpProxy, CyTube's 25 s / 120 s scaled down 25 times:
READY again within pingInterval + grace + a join, registered and guest, no line lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.integration.cytube.conftest import Live, fast_cytube, live

from daz.config import RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.faults import TcpProxy

SCALE = 25  # at 50 the bound with detection (1.9 s) and the ping timeout (2.4 s) were too close under CI load
PING_INTERVAL, PING_TIMEOUT = 25 / SCALE, 120 / SCALE
# The grace is not scaled below 0.4 s: less is within a loaded machine's scheduling jitter, so a
# healthy session's first PING could look late and be replaced once more (harmless, but the test
# counts the replacements).
GRACE = 10 / 25
JOIN_ALLOWANCE = 1.5  # a connect + join + login on a loaded machine
GUEST_WINDOW = 60 / SCALE


@contextlib.asynccontextmanager
async def black_hole_rig(room: RoomConfig | None, **cytube: object) -> AsyncIterator[tuple[Live, TcpProxy]]:
    limits = CytubeLimits(guest_login_window_seconds=GUEST_WINDOW)
    async with FakeCytubeServer(limits=limits, accounts={"dazbot": "pw"}, ping_interval=PING_INTERVAL,
                                ping_timeout=PING_TIMEOUT) as server, \
            TcpProxy("127.0.0.1", server.port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        config = (room or RoomConfig(channel="lobby")).model_copy(update={"server_url": url})
        # The echo timeout (3 s in fast_cytube) is a second way to notice a dead link; it is pushed
        # out of the way so that only the ping rules are measured here.
        settings: dict[str, object] = {"half_open_grace_seconds": GRACE, "delivery_timeout_seconds": 10}
        async with live(server, rooms=[config], cytube=fast_cytube(**(settings | cytube))) as h:
            yield h, proxy


async def black_hole_then_recover(h: Live, proxy: TcpProxy) -> tuple[float, list[str]]:
    """Chat through a black hole; returns (seconds until READY again, the lines sent)."""
    await h.state(RoomState.READY)
    await asyncio.sleep(GUEST_WINDOW + 0.2)  # a fresh guest name needs the guest window behind us
    loop = asyncio.get_running_loop()
    sent: list[str] = []
    readies = len(h.named("room.ready"))
    for i in range(5):
        sent.extend([f"before {i}"])
        await h.manager.send_chat("lobby", f"before {i}")
        await asyncio.sleep(0.05)
    proxy.blackhole()  # the open connection goes silent both ways...
    proxy.pass_through()  # ...new connections work
    started = loop.time()
    i = 0
    while len(h.named("room.ready")) == readies and loop.time() - started < 10:
        await h.manager.send_chat("lobby", f"during {i}")
        sent.append(f"during {i}")
        i += 1
        await asyncio.sleep(0.1)
    took = loop.time() - started
    for j in range(5):
        await h.manager.send_chat("lobby", f"after {j}")
        sent.append(f"after {j}")
    await h.until(lambda: h.status().outbox_depth == 0, timeout=10)
    return took, sent


async def test_a_registered_room_replaces_a_black_holed_link_in_seconds() -> None:
    room = RoomConfig(channel="lobby", username="dazbot", password="pw")  # type: ignore[arg-type]
    async with black_hole_rig(room) as (h, proxy):
        took, sent = await black_hole_then_recover(h, proxy)
        assert h.named("room.half_open")
        assert h.named("room.kicked") == []  # the Duplicate login on the old socket is our own doing
        assert h.status().state is RoomState.READY
        server = h.server
        # The server did kick the dead socket. (More than one kick: under heavy load a healthy new
        # session's PING was late past the scaled grace and it was replaced too; harmless, and the
        # lines below must still be exactly once. CyTube's server schedules each PING a pingInterval
        # after the last PONG, so the period is interval + round trip, loop lag included.)
        assert server.duplicate_login_kicks >= 1
    assert took <= PING_INTERVAL + GRACE + JOIN_ALLOWANCE
    said = [r.text for r in server.chat_log("lobby") if r.username == "dazbot"]
    assert said == sent  # nothing lost, nothing doubled, in order


async def test_a_guest_comes_back_under_a_fresh_name_in_seconds() -> None:
    async with black_hole_rig(None) as (h, proxy):
        took, sent = await black_hole_then_recover(h, proxy)
        users = {e["user"] for e in h.named("room.ready")}
        server = h.server
        assert len(users) == 2  # the old name stays taken until the server drops the dead socket
        assert server.login_refusals == []
    assert took <= PING_INTERVAL + GRACE + JOIN_ALLOWANCE
    said = [r.text for r in server.chat_log("lobby") if r.username in users]
    assert said == sent


async def test_without_detection_the_black_hole_lasts_until_the_ping_timeout() -> None:
    room = RoomConfig(channel="lobby", username="dazbot", password="pw")  # type: ignore[arg-type]
    async with black_hole_rig(room, half_open_detection=False) as (h, proxy):
        took, _ = await black_hole_then_recover(h, proxy)
    # the plain rule counts pingInterval + pingTimeout from the last frame, up to one interval before
    # the black hole began
    assert took >= PING_TIMEOUT
    assert took > PING_INTERVAL + GRACE + JOIN_ALLOWANCE


async def test_a_late_ping_on_a_healthy_link_switches_without_a_gap_or_a_lost_line() -> None:
    room = RoomConfig(channel="lobby", username="dazbot", password="pw")  # type: ignore[arg-type]
    async with black_hole_rig(room) as (h, proxy):
        await h.state(RoomState.READY)
        server = h.server
        absent = 0

        async def watch_presence() -> None:
            nonlocal absent
            while True:
                absent += "dazbot" not in server.sessions("lobby")
                await asyncio.sleep(0.01)

        sent: list[str] = []
        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(watch_presence(), name="test.presence")
            for i in range(5):
                await h.manager.send_chat("lobby", f"before {i}")
                sent.append(f"before {i}")
            # The link slows down for a moment: the next PING is late, not lost. (Not for long: the
            # server schedules each PING a pingInterval after the last PONG, so a lasting delay
            # stretches every period by the round trip, which at this scale exceeds the grace.)
            proxy.delay((GRACE + 0.3) * 1000)
            await h.until(lambda: bool(h.named("room.half_open")), timeout=5)
            proxy.pass_through()
            for i in range(5):
                await h.manager.send_chat("lobby", f"after {i}")
                sent.append(f"after {i}")
            await h.until(lambda: h.status().state is RoomState.READY and h.status().outbox_depth == 0,
                          timeout=10)
            watcher.cancel()
        assert absent == 0  # the account never left the channel: the new session came first
        assert h.named("room.kicked") == []  # the old socket's Duplicate login was our own doing
        assert server.duplicate_login_kicks == 1  # the old, live socket was still there: kicked by ours
    assert [r.text for r in server.chat_log("lobby") if r.username == "dazbot"] == sent
