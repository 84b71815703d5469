"""Many rooms on one server, the server's limits ON (numbers shrunk): the connection bucket's
schedule, the socket cap's parked rooms, zero refusals, at start, after a restart, and when an
operator stops a room."""

from __future__ import annotations

from datetime import datetime

from tests.integration.cytube.conftest import Live, fast_cytube, live, mirrored_limits

from daz.config import ProbeConfig, RoomConfig
from daz.cytube.states import RoomState
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer

REFILL = 2.0  # seconds per connection token (CyTube: 10)
BURST = 5
CAP = 10
ROOMS = [f"room{i:02d}" for i in range(12)]
SOCKET_CAP_KICK = "Too many connections from your IP address"


def optimum(k: int) -> float:
    """The bucket's schedule: the k-th connection (0-based) may start this long after the first."""
    return max(0, k - BURST + 1) * REFILL


def ready_offsets(h: Live, since: int) -> list[float]:
    """Seconds from the first READY to each READY after event index ``since``, in order."""
    times: list[datetime] = [e.timestamp for e in h.events[since:] if e.name == "room.ready"]
    return [(t - times[0]).total_seconds() for t in times]


def assert_on_schedule(offsets: list[float]) -> None:
    assert len(offsets) == CAP, offsets
    for k, got in enumerate(offsets):
        best = optimum(k)
        # Within 10 % of the bucket's optimum. The burst's optimum is 0: its five connections start
        # together but each still takes a handshake and a join, which on a loaded machine is a few
        # hundred ms, so the burst gets 10 % of two refills.
        allowed = 0.1 * max(best, 2 * REFILL)
        assert abs(got - best) <= allowed, (k, got, best, offsets)


def parked(h: Live) -> list[str]:
    return [r for r in ROOMS if h.status(r).state is RoomState.PARKED]


async def test_twelve_rooms_follow_the_bucket_park_two_and_never_get_refused() -> None:
    limits = CytubeLimits(bucket_size=BURST, refill_seconds=REFILL, max_sockets_per_ip=CAP,
                          guest_login_window_seconds=1.0)
    async with FakeCytubeServer(limits=limits, accounts={"dazbot": "pw"}, ping_interval=1.0,
                                ping_timeout=3.0) as server:
        rooms = [RoomConfig(channel=r, username="dazbot", password="pw", server_url=server.url)  # type: ignore[arg-type]
                 for r in ROOMS]
        cytube = fast_cytube(
            servers={"default": mirrored_limits(server).model_dump()},
            probe=ProbeConfig(interval_seconds=0.1, max_interval_seconds=0.2, timeout_seconds=0.5),
            backoff={"base_seconds": 0.5, "max_seconds": 1.0},
        )
        async with live(server, rooms=rooms, cytube=cytube) as h:
            # at start
            await h.until(lambda: sum(h.status(r).state is RoomState.READY for r in ROOMS) == CAP,
                          timeout=6 * REFILL + 5)
            assert_on_schedule(ready_offsets(h, 0))
            assert parked(h) == ["room10", "room11"]  # configuration order decides at start
            assert h.status("room11").reason == (
                "server allows 10 connections from this address; 2 rooms waiting"
            )
            capacity = h.manager.capacities()[0]
            assert (capacity.cap, capacity.in_use, capacity.parked) == (CAP, CAP, ("room10", "room11"))

            # a server restart: the ten that were READY go first, on the same schedule (the restarted
            # server's bucket is full again; daz saw it refuse connections, so its ledger starts over)
            mark = len(h.events)
            await server.restart(down_for=0.5)
            await h.until(lambda: sum(h.status(r).state is RoomState.READY for r in ROOMS) == CAP,
                          timeout=6 * REFILL + 8)
            assert_on_schedule(ready_offsets(h, mark))
            assert parked(h) == ["room10", "room11"]

            # an operator stops one of the ten: the best parked room takes its slot
            h.manager.stop("room03", "test")
            await h.state(RoomState.STOPPED, "room03")
            await h.state(RoomState.READY, "room10", timeout=2 * REFILL + 3)
            assert parked(h) == ["room11"]
            assert h.status("room11").reason.endswith("1 room waiting")
            assert h.status("room03").reason == "stopped by operator: test"

        assert server.refused_connects == 0  # no "Rate limit exceeded"
        assert server.kicks_by_reason().get(SOCKET_CAP_KICK, 0) == 0
        assert server.login_refusals == []
