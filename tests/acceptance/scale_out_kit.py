"""Shared by the scale-out acceptance tests: three `daz run` processes, six rooms, one PostgreSQL,
the fake CyTube server as the judge (sessions per account per room, duplicate-login kicks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from daz.testing.fake_cytube import CytubeLimits, FakeCytubeServer
from daz.testing.process import DazProcess

ACCOUNT = "dazbot"
PASSWORD = "s3cret-bot-pw"
ROOMS = [f"room{i}" for i in range(6)]
LEASE_SECONDS = 3.0
RENEW_SECONDS = 1.0


@dataclass
class Sampler:
    """Samples the fake server every 50 ms: the most sessions of the bot's account seen in a room,
    and (once ``track_gaps`` is set) each room's longest stretch without any session."""

    server: FakeCytubeServer
    worst: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    track_gaps: bool = False
    longest_gap: dict[str, float] = field(default_factory=dict)
    _empty_since: dict[str, float] = field(default_factory=dict)

    def sample(self) -> None:
        self.samples += 1
        now = time.monotonic()
        for room in ROOMS:
            count = self.server.sessions(room).count(ACCOUNT)
            self.worst[room] = max(self.worst.get(room, 0), count)
            if not self.track_gaps:
                continue
            if count == 0:
                self._empty_since.setdefault(room, now)
            elif room in self._empty_since:
                gap = now - self._empty_since.pop(room)
                self.longest_gap[room] = max(self.longest_gap.get(room, 0.0), gap)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            await asyncio.sleep(0.05)

    def joined(self) -> dict[str, int]:
        return {room: self.server.sessions(room).count(ACCOUNT) for room in ROOMS}


def write_config(tmp: Path, server: FakeCytubeServer, dsn: str,
                 plugins: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None) -> Path:
    (tmp / "bot.pw").write_text(PASSWORD)
    config = {
        "rooms": [{"channel": r, "username": ACCOUNT, "password_file": str(tmp / "bot.pw"),
                   "server_url": server.url} for r in ROOMS],
        "cytube": {"stable_after_seconds": 1, "backoff": {"base_seconds": 0.3, "max_seconds": 2},
                   "probe": {"interval_seconds": 0.2, "max_interval_seconds": 0.5, "timeout_seconds": 0.5},
                   "delivery_timeout_seconds": 3,
                   # the limits the cluster's fake server enforces (raised: three instances, one IP)
                   "servers": {"default": {"connection_burst": 1000, "max_sockets": 1000,
                                           "guest_login_window_seconds": 0.2}}},
        "database": {"url": dsn, "pool": {"min_size": 1, "max_size": 4}},
        "retry": {"poll_interval_seconds": 0.5, "lease_seconds": 5, "heartbeat_interval_seconds": 1},
        "health": {"port": 0, "interval_seconds": 1, "external_check": False},
        "plugins": {"commands": {"cooldown_seconds": 0}, **(plugins or {})},
        "cluster": cluster if cluster is not None else {
            "enabled": True, "lease_seconds": LEASE_SECONDS, "renew_interval_seconds": RENEW_SECONDS,
            "instance_timeout_seconds": LEASE_SECONDS, "rebalance_interval_seconds": 2},
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


def instance(tmp: Path, config: Path, name: str, dsn: str | None = None) -> DazProcess:
    env = {"DAZ_CLUSTER__INSTANCE_ID": name, "DAZ_SPOOL__PATH": str(tmp / f"spool-{name}.sqlite")}
    if dsn is not None:
        env["DAZ_DATABASE_URL"] = dsn
    site = tmp / "site"
    if site.is_dir():  # the streamer plugin (install_streamer)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return DazProcess.daz_run("-c", str(config), "--log-format", "json", "--grace", "3", env=env, cwd=tmp,
                              output_path=tmp / f"{name}.log", name=name)


async def leases(dsn: str) -> dict[str, str | None]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT room, owner FROM daz_room_leases WHERE lease_until > now()")
    finally:
        await conn.close()
    return {r["room"]: r["owner"] for r in rows}


async def wait_balanced(dsn: str, timeout: float = 40) -> None:
    """Until each instance holds two rooms (rooms move one per rebalance interval per instance)."""
    deadline = time.monotonic() + timeout
    while True:
        owners = list((await leases(dsn)).values())
        if sorted(owners.count(n) for n in ("a", "b", "c")) == [2, 2, 2] and len(owners) == len(ROOMS):
            return
        assert time.monotonic() < deadline, f"not balanced within {timeout}s: {owners}"
        await asyncio.sleep(0.2)


async def lease_expiry(dsn: str, owner: str) -> float:
    """Seconds until the earliest lease of ``owner`` expires (database clock)."""
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT extract(epoch FROM min(lease_until) - now())::float8"
            " FROM daz_room_leases WHERE owner = $1", owner,
        )
    finally:
        await conn.close()
    return float(value)


async def failover_seconds(server: FakeCytubeServer, rooms: list[str], killed_at: float,
                           timeout: float) -> float:
    """From ``killed_at`` until each room has lost the bot's session and then has one again
    (the slowest room's figure)."""
    left: set[str] = set()
    back: dict[str, float] = {}

    def settled() -> bool:
        for room in rooms:
            count = server.sessions(room).count(ACCOUNT)
            if count == 0:
                left.add(room)
            elif room in left and room not in back:
                back[room] = time.monotonic() - killed_at
        return len(back) == len(rooms)

    await wait_until(settled, timeout, f"{rooms} left by the killed instance and joined again "
                     f"(left: {sorted(left)}, back: {sorted(back)})")
    return max(back.values())


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def cluster_of_three(
    tmp: Path, dsn: str, dsn_for: Callable[[str], str | None] = lambda _: None,
    plugins: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[FakeCytubeServer, dict[str, DazProcess], Sampler]]:
    async with FakeCytubeServer(accounts={ACCOUNT: PASSWORD}, ping_interval=1, ping_timeout=2,
                                limits=CytubeLimits(guest_login_window_seconds=0.2, bucket_size=1000,
                                                    refill_seconds=0.01, max_sockets_per_ip=1000)) as server:
        config = write_config(tmp, server, dsn, plugins, cluster)
        procs = {name: instance(tmp, config, name, dsn_for(name)) for name in ("a", "b", "c")}
        sampler = Sampler(server)
        stop = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(sampler.run(stop), name="test.sampler")
                try:
                    for proc in procs.values():
                        await proc.start()
                    await wait_until(lambda: all(n == 1 for n in sampler.joined().values()), 40,
                                     "every room joined once")
                    yield server, procs, sampler
                finally:
                    stop.set()
        finally:
            for proc in procs.values():
                await proc.stop(grace=5)
        assert server.duplicate_login_kicks == 0
        assert all(server.max_concurrent_sessions(ACCOUNT, room) <= 1 for room in ROOMS)
        assert all(n <= 1 for n in sampler.worst.values()), sampler.worst




# A plugin that sends lines on request: the test drops ``orders-<instance>-<n>.json`` (a list of
# {"room", "count", "interval", "tag"}) into ``dir``; every line accepted by ``send_chat`` is
# appended to ``accepted-<instance>.log`` after the call returned. The text carries the wall-clock
# time of the call, so the latency to the server's receipt can be read from the server's chat log.
STREAMER = """
import asyncio
import json
import os
import time
from pathlib import Path


class Streamer:
    name = "streamer"
    depends_on = ()

    def __init__(self, config):
        self.dir = Path(config["dir"])
        self.me = os.environ["DAZ_CLUSTER__INSTANCE_ID"]

    async def setup(self, ctx):
        self.ctx = ctx

    async def run(self, stopping):
        seen = set()
        async with asyncio.TaskGroup() as group:
            while not stopping.is_set():
                for path in sorted(self.dir.glob(f"orders-{self.me}-*.json")):
                    if path.name not in seen:
                        seen.add(path.name)
                        jobs = json.loads(path.read_text())
                        path.rename(path.with_suffix(".taken"))  # a restarted instance starts no copy
                        for job in jobs:
                            group.create_task(self.stream(job, stopping))
                try:
                    await asyncio.wait_for(stopping.wait(), 0.05)
                except TimeoutError:
                    pass

    async def stream(self, job, stopping):
        start = time.monotonic()
        with open(self.dir / f"accepted-{self.me}.log", "a") as out:
            for i in range(job["count"]):
                if stopping.is_set():
                    return
                delay = start + i * job["interval"] - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                text = f"{job['tag']} {i} {time.time():.3f}"
                try:
                    await self.ctx.rooms.send_chat(job["room"], text)
                except Exception as exc:
                    self.ctx.log.warning("streamer.refused", room=job["room"], error=str(exc))
                    continue
                out.write(job["room"] + " " + text + "\\n")
                out.flush()
"""


def install_streamer(tmp: Path) -> dict[str, Any]:
    """Install the streamer as a distribution with a ``daz.plugins`` entry point; returns its config."""
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "daz_streamer.py").write_text(STREAMER)
    info = site / "daz_streamer-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: daz-streamer\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [daz.plugins]
        streamer = daz_streamer:Streamer
    """))
    orders = tmp / "orders"
    orders.mkdir(exist_ok=True)
    return {"streamer": {"dir": str(orders)}}


def order(tmp: Path, name: str, batch: int, jobs: list[dict[str, Any]]) -> None:
    path = tmp / "orders" / f"orders-{name}-{batch}.json"
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(jobs))
    staging.rename(path)  # atomic: the plugin never reads half a file


def accepted(tmp: Path) -> dict[str, list[str]]:
    """room -> texts whose send_chat returned, over every instance."""
    found: dict[str, list[str]] = {}
    for path in (tmp / "orders").glob("accepted-*.log"):
        for line in path.read_text().splitlines():
            room, _, text = line.partition(" ")
            if text:
                found.setdefault(room, []).append(text)
    return found
