"""Benchmark (not a test): the scale of one process, and many rooms on one server within its rules.

1. scale: N rooms (default 1,000) as guests on fake CyTube servers with their limits OFF, each server
   in its own process (default 4, rooms spread evenly), CyTube's 25 s / 120 s pings. Reports the
   time until every room is READY, memory per room (tracemalloc and the RSS delta of this process)
   and idle CPU (this process, PINGs only) per 100 rooms over a fixed window.
2. limits: 12 rooms (registered) on one fake server with CyTube's limits ON (5 connection tokens, one
   back per 10 s, 10 sockets per address), at start and after a server restart: each room's time to
   READY from the first attempt (start) or from the server's return (restart) side by side with the
   bucket's optimum, the rooms parked, and every refused attempt the server saw (rate limit,
   socket-cap kick, refused login).

    .venv/bin/python bench/rooms_scale.py                 # both parts, CyTube's numbers
    .venv/bin/python bench/rooms_scale.py --skip-scale    # the 12-room part only (~2 min)
    .venv/bin/python bench/rooms_scale.py --rooms 200 --servers 2 --idle-seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime

import psutil

from daz.clock import SystemClock
from daz.config import CytubeConfig, DazConfig, RoomConfig
from daz.cytube.rooms import RoomManager
from daz.cytube.states import RoomState
from daz.events.bus import Event, EventBus
from daz.metrics import DazMetrics
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.transport.socketio import socketio_transport_factory

NO_LIMITS = {"connection_burst": 1_000_000, "max_sockets": 1_000_000, "guest_login_window_seconds": 0}
SOCKET_CAP_KICK = "Too many connections from your IP address"


async def _until(predicate: object, timeout: float, step: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 - polls room states, bounded
            await asyncio.sleep(step)


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daz.testing.fake_cytube", "--port", "0", "--no-limits"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    for _ in range(50):  # the server logs a line or two before announcing its URL
        line = proc.stdout.readline()
        if "listening on" in line:
            return proc, line.strip().rsplit(" ", 1)[-1]
    proc.terminate()
    raise RuntimeError("the fake server did not announce its URL")


async def scale_part(rooms: int, servers: int, idle_seconds: float) -> None:
    fakes = [_start_fake() for _ in range(servers)]
    try:
        config = DazConfig(
            rooms=[RoomConfig(channel=f"room{i:04d}", server_url=fakes[i % servers][1])
                   for i in range(rooms)],
            cytube=CytubeConfig(servers={"default": NO_LIMITS}),
        )
        me = psutil.Process()
        clock = SystemClock()
        rss_before = me.memory_info().rss
        tracemalloc.start()
        async with EventBus(clock=clock) as bus:
            manager = RoomManager(config, bus, DazMetrics(), clock, random.Random(3),
                                  socketio_transport_factory)
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(manager.run(stopping), name="bench.rooms")
                started = time.monotonic()
                await _until(lambda: all(manager.room(r).state is RoomState.READY for r in manager.rooms()),
                             600, step=0.2)
                joined = time.monotonic() - started
                await asyncio.sleep(2)
                traced, _ = tracemalloc.get_traced_memory()
                tracemalloc.stop()  # tracing costs CPU: the idle window runs without it
                rss_after = me.memory_info().rss
                cpu_before, wall_before = me.cpu_times(), time.monotonic()
                await asyncio.sleep(idle_seconds)
                cpu_after, wall = me.cpu_times(), time.monotonic() - wall_before
                ready = sum(manager.room(r).state is RoomState.READY for r in manager.rooms())
                stopping.set()
        cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        print(f"scale: {rooms} rooms on {servers} fake servers (limits off): all READY in {joined:.1f}s; "
              f"tracemalloc {traced / rooms / 1024:.1f} KiB/room; "
              f"RSS delta {(rss_after - rss_before) / rooms / 1024:.1f} KiB/room; "
              f"idle CPU {100 * cpu / wall / rooms * 100:.2f} % of one core per 100 rooms "
              f"({wall:.0f}s window, {ready} READY at its end)")
    finally:
        for proc, _ in fakes:
            proc.terminate()
            proc.wait(timeout=10)


def _optimum(k: int, burst: int, refill: float) -> float:
    return max(0, k - burst + 1) * refill


def _report(label: str, ready: list[tuple[str, datetime]], origin: datetime, burst: int,
            refill: float) -> None:
    print(f"  {label}: room, READY after (s), bucket optimum (s), over")
    for k, (room, at) in enumerate(ready):
        got = (at - origin).total_seconds()
        best = _optimum(k, burst, refill)
        print(f"    {room}  {got:6.2f}  {best:6.2f}  {got - best:+.2f}")


async def limits_part(rooms: int, refill: float, down_for: float) -> None:
    burst, cap = 5, 10
    limits = CytubeLimits(bucket_size=burst, refill_seconds=refill, max_sockets_per_ip=cap)
    async with FakeCytubeServer(limits=limits, accounts={"dazbot": "pw"}) as server:
        config = DazConfig(
            rooms=[RoomConfig(channel=f"room{i:02d}", username="dazbot", password="pw",  # type: ignore[arg-type]  # noqa: S106
                              server_url=server.url) for i in range(rooms)],
            cytube=CytubeConfig(servers={"default": {
                "connection_burst": burst, "connection_refill_seconds": refill, "max_sockets": cap}}),
        )
        clock = SystemClock()
        events: list[Event] = []
        async with EventBus(clock=clock) as bus:
            bus.subscribe("room.ready", events.append, name="bench.ready")
            bus.subscribe("room.state_changed", events.append, name="bench.states")
            manager = RoomManager(config, bus, DazMetrics(), clock, random.Random(3),
                                  socketio_transport_factory)
            stopping = asyncio.Event()

            def ready_count() -> int:
                return sum(manager.room(r).state is RoomState.READY for r in manager.rooms())

            async with asyncio.TaskGroup() as group:
                group.create_task(manager.run(stopping), name="bench.rooms")
                await _until(lambda: ready_count() == min(rooms, cap), (rooms + 2) * refill + 30)
                await bus.drain(2.0)
                first_attempt = min(e.timestamp for e in events if e.name == "room.state_changed")
                start = [(e.data["room"], e.timestamp) for e in events if e.name == "room.ready"]
                parked = [r for r in manager.rooms() if manager.room(r).state is RoomState.PARKED]
                print(f"limits: {rooms} rooms, one server, CyTube's limits on "
                      f"({burst} tokens, 1 per {refill:g}s, {cap} sockets)")
                _report("start (from the first attempt)", start, first_attempt, burst, refill)
                print(f"  parked: {parked} ({manager.room(parked[0]).reason if parked else '-'})")
                mark = len(events)
                await server.stop()
                await asyncio.sleep(down_for)
                await server.start()
                back = datetime.now(tz=first_attempt.tzinfo)
                await _until(lambda: ready_count() == min(rooms, cap), (rooms + 2) * refill + 30)
                await bus.drain(2.0)
                again = [(e.data["room"], e.timestamp) for e in events[mark:] if e.name == "room.ready"]
                parked = [r for r in manager.rooms() if manager.room(r).state is RoomState.PARKED]
                _report(f"after a restart ({down_for:g}s down; from the server's return)", again, back,
                        burst, refill)
                print(f"  parked: {parked}")
                stopping.set()
        kicks = server.kicks_by_reason().get(SOCKET_CAP_KICK, 0)
        print(f"  refused attempts: rate limit {server.refused_connects}, socket-cap kicks {kicks}, "
              f"refused logins {len(server.login_refusals)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--limit-rooms", type=int, default=12)
    parser.add_argument("--refill", type=float, default=10.0, help="seconds per connection token")
    parser.add_argument("--down-for", type=float, default=2.0, help="server restart downtime")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-limits", action="store_true")
    args = parser.parse_args()
    if not args.skip_limits:
        asyncio.run(limits_part(args.limit_rooms, args.refill, args.down_for))
    if not args.skip_scale:
        asyncio.run(scale_part(args.rooms, args.servers, args.idle_seconds))


if __name__ == "__main__":
    main()
