"""Benchmark (not a test): room recovery time after a server restart, and memory per room.

1. restart → READY: the fake CyTube server is stopped for a mixed outage (1-15 s by default) and
   started again on the same port, 20 times; we measure from the moment it listens again until the
   room is READY, with the reachability probe on and off (both modes run side by side, each against
   its own server, with daz's default backoff: 2 s base, x2, ±25 %, 300 s cap). Between outages the
   room stays READY past ``stable_after_seconds`` (1 s here), so every outage starts at attempt 1.
2. memory: 100 rooms joined to a fake server running in a separate process; tracemalloc's traced
   memory and the RSS delta of this process, divided by the number of rooms.

    .venv-dev/bin/python bench/rooms.py                  # both parts
    .venv-dev/bin/python bench/rooms.py --skip-restarts  # memory only
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
import tracemalloc

import psutil

from daz.clock import SystemClock
from daz.config import CytubeConfig, DazConfig, ProbeConfig, RoomConfig
from daz.cytube.rooms import RoomManager
from daz.cytube.states import RoomState
from daz.events.bus import Event, EventBus
from daz.metrics import DazMetrics
from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.transport.socketio import socketio_transport_factory

OUTAGES = (1.0, 3.0, 6.0, 10.0, 15.0)
STABLE_SECONDS = 1.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def restart_mode(probe: bool, restarts: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    async with FakeCytubeServer(
        # The bench measures daz's own reconnect schedule: a guest window so short it never binds.
        limits=CytubeLimits(guest_login_window_seconds=0.001),
    ) as server:
        config = DazConfig(
            rooms=[RoomConfig(channel="bench", username=f"bench{int(probe)}", server_url=server.url)],
            # Each outage is an independent event: the session is stable (attempt counter reset)
            # before the next one, so probe-off waits follow the reconnect schedule from attempt 1.
            cytube=CytubeConfig(probe=ProbeConfig(enabled=probe), stable_after_seconds=STABLE_SECONDS,
                                servers={"default": {"guest_login_window_seconds": 0.001}}),
        )
        clock = SystemClock()
        ready_at: list[float] = []

        def on_ready(event: Event) -> None:
            ready_at.append(time.monotonic())

        async with EventBus(clock=clock) as bus:
            bus.subscribe("room.ready", on_ready)
            manager = RoomManager(config, bus, DazMetrics(), clock, rng, socketio_transport_factory)
            stopping = asyncio.Event()
            results: list[float] = []
            async with asyncio.TaskGroup() as group:
                group.create_task(manager.run(stopping), name="bench.rooms")
                await _until(lambda: manager.room("bench").state is RoomState.READY, 30)
                for i in range(restarts):
                    outage = OUTAGES[i % len(OUTAGES)]
                    await server.stop()
                    await _until(lambda: manager.room("bench").state is not RoomState.READY, 10)
                    await asyncio.sleep(outage)
                    seen = len(ready_at)
                    await server.start()
                    back = time.monotonic()
                    await _until(lambda: len(ready_at) > seen, 400)  # noqa: B023 - awaited in the loop
                    results.append(ready_at[-1] - back)
                    await asyncio.sleep(STABLE_SECONDS + 0.5)
                    print(f"  probe={'on ' if probe else 'off'} restart {i + 1:2d}: outage {outage:4.1f}s "
                          f"→ READY {results[-1]:6.2f}s after the server returned", flush=True)
                stopping.set()
    return results


async def _until(predicate: object, timeout: float) -> None:
    check = predicate  # a zero-argument callable
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]  # noqa: ASYNC110 - polling a plain predicate
            await asyncio.sleep(0.01)


async def restarts_part(restarts: int) -> None:
    on, off = await asyncio.gather(restart_mode(True, restarts, 1), restart_mode(False, restarts, 2))
    for name, values in (("probe on ", on), ("probe off", off)):
        print(f"restart→READY {name}: n={len(values)} p50={statistics.median(values):.2f}s "
              f"p95={percentile(values, 0.95):.2f}s max={max(values):.2f}s")


async def memory_part(rooms: int) -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, "-m", "daz.testing.fake_cytube", "--port", "0", "--no-limits"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for _ in range(50):  # the server logs a line or two before announcing its URL
            line = proc.stdout.readline()
            if "listening on" in line:
                url = line.strip().rsplit(" ", 1)[-1]
                break
        assert url.startswith("http://"), "the fake server did not announce its URL"
        config = DazConfig(
            rooms=[RoomConfig(channel=f"room{i:03d}", server_url=url) for i in range(rooms)],
            # the fake runs with its limits off: daz is configured the same way
            cytube=CytubeConfig(servers={"default": {"connection_burst": 100_000, "max_sockets": 100_000,
                                                     "guest_login_window_seconds": 0}}),
        )
        me = psutil.Process()
        clock = SystemClock()
        rss_before = me.memory_info().rss
        tracemalloc.start()
        async with EventBus(clock=clock) as bus:
            manager = RoomManager(
                config, bus, DazMetrics(), clock, random.Random(3), socketio_transport_factory
            )
            stopping = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(manager.run(stopping), name="bench.rooms")
                started = time.monotonic()
                await _until(lambda: all(manager.room(r).state is RoomState.READY for r in manager.rooms()),
                             120)
                joined = time.monotonic() - started
                await asyncio.sleep(2)
                traced, _ = tracemalloc.get_traced_memory()
                rss_after = me.memory_info().rss
                stopping.set()
        tracemalloc.stop()
        print(f"memory: {rooms} rooms READY in {joined:.2f}s; "
              f"tracemalloc {traced / rooms / 1024:.1f} KiB/room; "
              f"RSS delta {(rss_after - rss_before) / rooms / 1024:.1f} KiB/room")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--skip-restarts", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not args.skip_memory:
        asyncio.run(memory_part(args.rooms))
    if not args.skip_restarts:
        asyncio.run(restarts_part(args.restarts))


if __name__ == "__main__":
    main()
